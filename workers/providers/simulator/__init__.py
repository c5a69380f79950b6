"""A Twilio-compatible Messages API in miniature, for the quick start, tests and benchmarks."""
