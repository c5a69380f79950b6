"""Campaigns: creation, approval, scheduling, fan-out to deliveries, preview."""
