"""Communities: places and groups that campaigns address."""
