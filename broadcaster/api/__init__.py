"""The HTTP API, the dashboard and the webhooks, as one FastAPI application."""
