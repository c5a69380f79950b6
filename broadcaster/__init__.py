"""riskcast's service: the store, audience and campaign logic, HTTP API, CLI and webhooks."""
