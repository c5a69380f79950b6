"""The queues workers consume: ``urgent`` and ``bulk`` carry campaign work, ``control``
operational tasks. Named here, apart from the Celery app, so the command line can offer
them without loading Celery."""

QUEUES = ("control", "urgent", "bulk")
