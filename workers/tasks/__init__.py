"""Celery tasks: thin wrappers that build the process's context and call plain functions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import signals

from broadcaster.runtime import get_runtime, set_runtime
from workers.app import celery_app
from workers.context import Context, make_context
from workers.pipeline import run_fanout
from workers.sending import FANOUT_TASK, SEND_TASK
from workers.sending import send_batch as send_batch_work

log = logging.getLogger(__name__)

_context: Context | None = None


def enqueue(name: str, args: Sequence[Any], queue: str) -> None:
    celery_app.send_task(name, args=list(args), queue=queue)


def context() -> Context:
    global _context  # noqa: PLW0603 - one context per worker process
    if _context is None:
        _context = make_context(get_runtime(), enqueue)
    return _context


def set_context(ctx: Context | None) -> None:
    global _context  # noqa: PLW0603
    _context = ctx


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # Connections must not cross a fork: each child makes its own.
    set_runtime(None)
    set_context(None)


@celery_app.task(name=FANOUT_TASK, ignore_result=True)
def fanout(campaign_id: int) -> None:
    run_fanout(context(), campaign_id)


@celery_app.task(name=SEND_TASK, ignore_result=True)
def send_batch(token: str, campaign_id: int, priority: str) -> None:
    send_batch_work(context(), token, campaign_id, priority)
