"""Contacts: consent, memberships, import, privacy (export and erasure)."""
