"""Inbound messages: STOP, START and HELP keywords and the inbox."""
