"""Status callbacks and inbound webhooks: signed form posts, as Twilio sends them.

A few threads drain a time-ordered queue of jobs; a delay or a retry goes back into the
queue rather than sleeping in a thread, so a slow or restarting receiver never stalls the
other messages' callbacks. Retries are spread over ~8 s so a receiving API that restarts
still gets them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter
from twilio.request_validator import RequestValidator

from messages import segments
from workers.providers.simulator.protocol import API_VERSION, SERVICE_SENDER

logger = logging.getLogger(__name__)

CALLBACK_THREADS = 4
CALLBACK_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
CALLBACK_TIMEOUT = 5.0


@dataclass(order=True, slots=True)
class _Job:
    due: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class CallbackQueue:
    """A few threads running jobs when they fall due, earliest first."""

    def __init__(self, threads: int = CALLBACK_THREADS) -> None:
        self._threads_wanted = threads
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._running = False
        self._in_flight = 0

    def schedule(self, delay: float, run: Callable[[], None]) -> None:
        with self._cond:
            if not self._running:
                self._start()
            heapq.heappush(self._heap, _Job(time.monotonic() + delay, next(self._seq), run))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._in_flight

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self, *, drain: bool = True, timeout: float = 10.0) -> None:
        if drain:
            self.wait_idle(timeout)
        with self._cond:
            self._running = False
            self._heap.clear()
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout)

    def _start(self) -> None:
        self._running = True
        for index in range(self._threads_wanted):
            thread = threading.Thread(target=self._loop, name=f"sim-callbacks-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._running:
                        return
                    now = time.monotonic()
                    if self._heap and self._heap[0].due <= now:
                        job = heapq.heappop(self._heap)
                        self._in_flight += 1
                        break
                    wait = self._heap[0].due - now if self._heap else None
                    self._cond.wait(wait)
            try:
                job.run()
            except Exception:  # a callback job must never kill its thread
                logger.exception("simulator callback job failed")
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()


def callback_params(data: Mapping[str, Any], status: str, error_code: int | None) -> dict[str, str]:
    """The form of a status callback for the message ``data`` (Twilio's JSON shape)."""
    params = {
        "MessageSid": data["sid"],
        "SmsSid": data["sid"],
        "AccountSid": data["account_sid"],
        "From": data["from"] or SERVICE_SENDER,
        "To": data["to"],
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": API_VERSION,
    }
    if data.get("messaging_service_sid"):
        params["MessagingServiceSid"] = data["messaging_service_sid"]
    if status in ("undelivered", "failed") and error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def inbound_params(account_sid: str, sid: str, from_: str, to: str, body: str) -> dict[str, str]:
    """The form of an inbound-message webhook: someone texted ``body`` to ``to``."""
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": str(segments(body).parts),
        "SmsStatus": "received",
        "ApiVersion": API_VERSION,
    }


class StatusCallbacks:
    """Posts signed webhooks from a :class:`CallbackQueue` and counts what became of them.

    Counts belong to a generation: :meth:`forget` starts a new one, and a post made for
    an older generation (a message forgotten since) is neither sent nor counted.
    Thread-safe.
    """

    def __init__(self, auth_token: str, threads: int = CALLBACK_THREADS) -> None:
        self.validator = RequestValidator(auth_token)
        self.queue = CallbackQueue(threads)
        self._lock = threading.Lock()
        self.generation = 0
        self.delivered = 0
        self.failed = 0  # given up after every retry (receiver down or answering 5xx)
        self.refused = 0  # the receiver answered with a 4xx
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=threads)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Status callbacks go through urllib3 itself: two per message, and requests costs
        # twice the CPU for each (the benchmark's simulator shares two cores with riskcast).
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=threads, retries=False)

    def forget(self) -> None:
        """Start a new generation with its counts at zero."""
        with self._lock:
            self.generation += 1
            self.delivered = self.failed = self.refused = 0

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """``X-Twilio-Signature`` for a form POST of ``params`` to ``url``."""
        return str(self.validator.compute_signature(url, dict(params)))

    def post_signed(self, url: str, params: Mapping[str, str]) -> int | None:
        """POST a signed webhook; the receiver's status, or None if it could not be reached."""
        headers = {
            "X-Twilio-Signature": self.sign(url, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            response = self.pool.request(
                "POST", url, body=urlencode(params), headers=headers, timeout=CALLBACK_TIMEOUT
            )
        except urllib3.exceptions.HTTPError:
            return None
        return int(response.status)

    def post(
        self,
        url: str,
        params: dict[str, str],
        *,
        generation: int,
        then: Callable[[], None],
        attempt: int = 0,
    ) -> None:
        """Post one callback; on a connection error or 5xx, try again later from the queue.
        ``then`` runs once it is delivered, refused or given up."""
        if generation != self.generation:
            return  # forgotten since
        status = self.post_signed(url, params)
        if status is not None and status < 500:
            with self._lock:
                if generation != self.generation:
                    return
                if status < 400:
                    self.delivered += 1
                else:  # the receiver refused it (a bad signature?): retrying cannot help
                    self.refused += 1
            then()
            return
        if attempt < len(CALLBACK_RETRY_DELAYS):
            self.queue.schedule(
                CALLBACK_RETRY_DELAYS[attempt],
                lambda: self.post(
                    url, params, generation=generation, then=then, attempt=attempt + 1
                ),
            )
            return
        with self._lock:
            if generation != self.generation:
                return
            self.failed += 1
        then()

    def post_inbound(self, url: str, params: Mapping[str, str]) -> tuple[int | None, str]:
        """POST a signed inbound webhook; the receiver's status (None if unreachable) and
        its answer (TwiML)."""
        headers = {"X-Twilio-Signature": self.sign(url, params), "User-Agent": "TwilioProxy/1.1"}
        try:
            response = self.session.post(
                url, data=params, headers=headers, timeout=CALLBACK_TIMEOUT
            )
        except requests.RequestException:
            return None, ""
        return response.status_code, response.text
