"""A Twilio-compatible Messages API in miniature, for the quick start, tests and benchmarks.

- :mod:`.core`: :class:`~.core.SimulatorCore`, the messages, their timing, faults, counts;
- :mod:`.callbacks`: signed status callbacks and inbound webhooks, posted from a queue;
- :mod:`.protocol`: Twilio's error bodies, test numbers, dates and paging;
- :mod:`.server`: the core behind HTTP for the real SDK (``riskcast simulator``);
- :mod:`.provider`: :class:`~.provider.SimulatorProvider`, the core as an in-process provider.

Nothing is imported here, so the core comes without the web server.
"""
