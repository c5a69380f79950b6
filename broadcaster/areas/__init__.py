"""Organisations and areas: whom each person works for, and which communities they see."""
