"""Monitoring: worker heartbeats, send rates and queue statistics."""
