"""riskcast's workers: the Celery app, its tasks and the provider gateways."""
