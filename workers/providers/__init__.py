"""Provider gateways: one interface, Twilio and the built-in simulator behind it."""
