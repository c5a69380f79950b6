"""Deliveries: the state machine, provider reports, fallback, deliveries in doubt."""
