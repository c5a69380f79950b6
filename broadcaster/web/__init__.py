"""The HTTP face of the service: the JSON API, the dashboard and the webhooks."""
