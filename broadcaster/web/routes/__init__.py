"""Routes: one module per area of the API and the dashboard; they call the services."""
