"""A worker process's dependencies, made once per process and passed in explicitly.

The plain functions in :mod:`workers.sending` and :mod:`workers.pipeline` take a
:class:`Context`; tasks build it lazily (after the fork, so no connection crosses a fork)
and tests build their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from broadcaster.config import Settings
from broadcaster.runtime import Runtime
from workers.leases import Leases, MemoryLeases, RedisLeases
from workers.providers import errors
from workers.providers.base import Provider
from workers.providers.simulator.core import SimulatorCore
from workers.providers.simulator.provider import SimulatorProvider
from workers.providers.twilio import TwilioProvider
from workers.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

Enqueue = Callable[[str, Sequence[Any], str], None]


@dataclass
class Context:
    runtime: Runtime
    provider: Provider
    limiter: RateLimiter
    leases: Leases
    enqueue: Enqueue

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


def make_provider(settings: Settings, core: SimulatorCore | None = None) -> Provider:
    if settings.error_codes_file:
        # The operator's codes, merged over the built-in table before the first send. A bad
        # file fails every task of the process, naming the entry it cannot read, rather than
        # sending with decisions the operator did not mean.
        errors.load_extra_codes(settings.error_codes_file)
    if settings.provider == "twilio" or settings.simulator_url:
        # Twilio, or a `riskcast simulator` server shared by the fleet: the twilio SDK either way.
        return TwilioProvider(
            settings.account_sid,
            settings.auth_token,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            from_number=settings.from_number,
            base_url=(
                settings.twilio_base_url
                if settings.provider == "twilio"
                else settings.simulator_url
            ),
            timeout=settings.twilio_timeout,
        )
    core = core or SimulatorCore(
        settings.account_sid,
        settings.auth_token,
        queue_delay=settings.simulator_queue_delay,
        answer_delay=settings.simulator_answer_delay,
    )
    return SimulatorProvider(
        core,
        account_sid=settings.account_sid,
        auth_token=settings.auth_token,
        from_number=settings.from_number,
        messaging_service_sid=settings.twilio_messaging_service_sid,
    )


def make_context(
    runtime: Runtime, enqueue: Enqueue, *, simulator: SimulatorCore | None = None
) -> Context:
    settings = runtime.settings
    url = settings.effective_redis_url
    limiter: RateLimiter
    leases: Leases
    if url:
        client = redis.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=5, retry_on_timeout=True
        )
        limiter = RedisRateLimiter(client, settings.send_rate)
        leases = RedisLeases(client)
    else:
        limiter = MemoryRateLimiter(settings.send_rate)
        leases = MemoryLeases()
    return Context(
        runtime=runtime,
        provider=make_provider(settings, simulator),
        limiter=limiter,
        leases=leases,
        enqueue=enqueue,
    )
