"""``riskcast bench``: the numbers a user asks before trusting riskcast with a national campaign.

One run against the configured PostgreSQL and Redis, in a database and a Redis DB of its own
(both created fresh and removed afterwards): real worker and scheduler processes
(``python -m workers.cli worker``), the API receiving status callbacks as a process of its
own, and the HTTP Twilio simulator (in this process) spoken to by the real twilio SDK.

- :mod:`bench.config`: the settings of a run (figures, sizes, targets);
- :mod:`bench.environment`: the database, Redis DB, simulator, template and contacts;
- :mod:`bench.processes`: starting, watching and stopping the processes;
- one module per figure: :mod:`bench.p1_fanout` (launch to every delivery queued, against
  an ``INSERT ... SELECT`` floor), :mod:`bench.p2_send` (deliveries per second end to end,
  against raw ``client.messages.create`` loops), :mod:`bench.p3_urgent` (urgent alerts'
  latency during the bulk send), :mod:`bench.p4_rate` (messages per 1-second window at a
  configured rate), :mod:`bench.p5_import` (CSV import, rows per second and memory);
- :mod:`bench.run`: one run, figure by figure; :mod:`bench.report`: the table and the JSON.

The benchmark is a tool beside the service: it imports ``workers``, ``broadcaster`` and
``messages``, and none of them imports it (``riskcast bench`` loads it when it runs).
Phone numbers are never printed: the contacts are synthetic, and only counts and timings
leave the bench.
"""
