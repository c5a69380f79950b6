"""CAP alerts: import, area mapping and the public feed."""
