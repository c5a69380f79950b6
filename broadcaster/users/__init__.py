"""Officials, operators and administrators: accounts, roles and API tokens."""
