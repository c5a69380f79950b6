"""A Twilio-compatible Messages API in miniature, for the quick start, tests and benchmarks.

:class:`SimulatorCore` is the logic: it answers a create-message request the way Twilio
does (same JSON, same error codes, Twilio's test magic numbers), injects faults on
demand, counts everything tests assert on, and posts signed status callbacks from a small
pool of background threads. ``simulator_server`` puts it behind HTTP for the real SDK;
:class:`SimulatorProvider` calls it in-process and fails exactly as ``TwilioProvider`` does.

It is no kinder than Twilio in what riskcast relies on:

- no callback for a message's initial status (``queued``, or ``accepted`` through a
  messaging service); the message stays there for ``queue_delay`` seconds (Twilio's queue
  holding it behind a sender's MPS), then ``sent``, then ``callback_delay`` later its final
  status, each with a callback;
- ``answer_delay``: the message is stored (and will be sent) that long before the answer
  leaves, so a client killed or timed out in between does not know it was accepted;
- the read API (``GET Messages.json`` with Twilio's filters and paging, ``GET
  Messages/{Sid}.json``) with its own injected error rate; a ``DateSent`` filter never
  matches a message Twilio has not sent yet, as on Twilio, where ``date_sent`` is empty.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter
from twilio.request_validator import RequestValidator

from workers.providers.base import (
    LOOKUP_PAGE_SIZE,
    Lookup,
    OutboundMessage,
    ProviderMessage,
    ProviderResult,
    ProviderStatus,
    collect_lookup,
)
from workers.providers.errors import error_from_response
from workers.providers.twilio import WHATSAPP_PREFIX, create_params, lookup_sender

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"
# The sender Twilio would pick from a messaging service, reported in callbacks.
SERVICE_SENDER = "+15005550006"
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})

# Twilio's test credentials answer these "To" numbers with a fixed error; so does the
# simulator, with Twilio's wording (which quotes the number, as the real API does).
MAGIC_NUMBERS: Mapping[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient {to}"),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}
FAULT_CODES: Mapping[int, int] = {429: 20429, 500: 20500, 503: 20503}
MAX_BODY = 1600
# The read API's page sizes, as Twilio's: 50 unless asked, at most 1,000.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
PAGE_TOKEN_PREFIX = "PA"  # noqa: S105 -- a page token, Twilio's prefix, no secret

# Status callbacks: a few threads, and retries spread over ~8 s so a receiving API that
# restarts still gets them.
CALLBACK_THREADS = 4
CALLBACK_RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
CALLBACK_TIMEOUT = 5.0

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def count_segments(body: str) -> int:
    """Segments Twilio bills for ``body``: GSM-7 160/153, else UCS-2 70/67 UTF-16 units."""
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in body):
        units = len(body) + sum(ch in _GSM7_EXTENDED for ch in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else math.ceil(units / part)


def twilio_error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    """Twilio's legacy error body, the one the SDK turns into TwilioRestException."""
    return status, {
        "code": code,
        "message": message,
        "more_info": MORE_INFO.format(code=code),
        "status": status,
    }


RFC2822 = "%a, %d %b %Y %H:%M:%S +0000"


def _rfc2822(moment: datetime) -> str:
    return moment.strftime(RFC2822)


def _rfc2822_now() -> str:
    return _rfc2822(datetime.now(UTC))


def parse_date_filter(value: str) -> tuple[datetime, bool]:
    """A ``DateSent`` filter value: ``YYYY-MM-DD`` (a whole day, GMT) or the SDK's
    ``YYYY-MM-DDTHH:MM:SSZ``. Returns (moment, date_only); ValueError if neither."""
    text = value.strip()
    if len(text) == 10:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC), True
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC), False


def _rates(name: str, error_rates: Mapping[int, float]) -> dict[int, float]:
    rates = {int(status): float(p) for status, p in error_rates.items()}
    for status, p in rates.items():
        if not 400 <= status <= 599:
            raise ValueError(f"{name}: {status} is not an HTTP error status")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name}: {status}: {p} is not a probability")
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError(f"{name}: probabilities add up to more than 1")
    return rates


_T = TypeVar("_T")


def _bare(to: str) -> str:
    return to.removeprefix(WHATSAPP_PREFIX)


def _lookup(table: Mapping[str, _T], to: str) -> _T | None:
    """Per-number test behaviour: set for ``whatsapp:+...`` it holds on WhatsApp only; set
    for the bare number it holds on both channels."""
    found = table.get(to)
    return found if found is not None else table.get(_bare(to))


@dataclass(slots=True)
class _Outcome:
    final_status: str
    error_code: int | None


@dataclass(slots=True)
class _ForcedError:
    http_status: int
    code: int
    remaining: int | None  # None: every request


@dataclass(slots=True)
class _Record:
    data: dict[str, Any]
    form: dict[str, str]
    outcome: _Outcome
    created_at: datetime  # wall clock, for the read API's date filters and order
    sent_at: float  # monotonic: when Twilio's queue releases it (status "sent")
    settle_at: float  # monotonic: when it reaches its final status
    tracked: bool  # statuses advance through scheduled callbacks
    seq: int = 0  # creation order, the read API's tie-break
    date_sent: datetime | None = None


@dataclass(order=True, slots=True)
class _Job:
    due: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class _CallbackDispatcher:
    """A few threads draining a time-ordered queue of callback jobs.

    Delays and retries go back into the queue rather than sleeping in a thread, so a slow
    or restarting receiver never stalls the other messages' callbacks.
    """

    def __init__(self, threads: int = CALLBACK_THREADS) -> None:
        self._threads_wanted = threads
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._running = False
        self._in_flight = 0
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=threads)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Status callbacks go through urllib3 itself: two per message, and requests costs
        # twice the CPU for each (the benchmark's simulator shares two cores with riskcast).
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=threads, retries=False)

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


class SimulatorCore:
    """Twilio's Messages API semantics, in memory. Thread-safe."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        error_rates: Mapping[int, float] | None = None,
        latency: float = 0.0,
        callback_delay: float = 0.05,
        deliver_callbacks: bool = True,
        seed: int | None = None,
        callback_threads: int = CALLBACK_THREADS,
        queue_delay: float = 0.05,
        answer_delay: float = 0.0,
        read_error_rates: Mapping[int, float] | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.validator = RequestValidator(auth_token)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._initial_config: dict[str, Any] = {
            "error_rates": dict(error_rates or {}),
            "latency": latency,
            "deliver_callbacks": deliver_callbacks,
            "callback_delay": callback_delay,
            "queue_delay": queue_delay,
            "answer_delay": answer_delay,
            "read_error_rates": dict(read_error_rates or {}),
        }
        self.error_rates: dict[int, float] = {}
        self.read_error_rates: dict[int, float] = {}
        self.latency = 0.0
        self.deliver_callbacks = True
        self.callback_delay = 0.05
        self.queue_delay = 0.05
        self.answer_delay = 0.0
        self.configure(**self._initial_config)
        self._dispatcher = _CallbackDispatcher(callback_threads)
        self._generation = 0
        self._clear_state()

    # --- configuration and accounting -------------------------------------------------

    def configure(
        self,
        *,
        error_rates: Mapping[int, float] | None = None,
        latency: float | None = None,
        deliver_callbacks: bool | None = None,
        callback_delay: float | None = None,
        queue_delay: float | None = None,
        answer_delay: float | None = None,
        read_error_rates: Mapping[int, float] | None = None,
    ) -> None:
        """Change behaviour at run time; arguments left ``None`` keep their value.

        ``error_rates`` apply to creating messages, ``read_error_rates`` to the read API.
        """
        if error_rates is not None:
            self.error_rates = _rates("error_rates", error_rates)
        if read_error_rates is not None:
            self.read_error_rates = _rates("read_error_rates", read_error_rates)
        for name, value in (("queue_delay", queue_delay), ("answer_delay", answer_delay)):
            if value is not None:
                if value < 0:
                    raise ValueError(f"{name} must not be negative")
                setattr(self, name, float(value))
        if latency is not None:
            if latency < 0:
                raise ValueError("latency must not be negative")
            self.latency = float(latency)
        if deliver_callbacks is not None:
            self.deliver_callbacks = bool(deliver_callbacks)
        if callback_delay is not None:
            if callback_delay < 0:
                raise ValueError("callback_delay must not be negative")
            self.callback_delay = float(callback_delay)

    def config(self) -> dict[str, Any]:
        return {
            "error_rates": dict(self.error_rates),
            "latency": self.latency,
            "deliver_callbacks": self.deliver_callbacks,
            "callback_delay": self.callback_delay,
            "queue_delay": self.queue_delay,
            "answer_delay": self.answer_delay,
            "read_error_rates": dict(self.read_error_rates),
        }

    def _clear_state(self) -> None:
        with self._lock:
            # Jobs started before a reset carry the old generation and drop themselves.
            self._generation += 1
            self._requests = 0
            self._accepted = 0
            self._rejected: Counter[int] = Counter()
            self._rejected_codes: Counter[int] = Counter()
            self._accepted_by_to: Counter[str] = Counter()
            self._records: dict[str, _Record] = {}
            self._order: list[str] = []
            self._by_to: dict[str, list[str]] = {}
            self._reads = 0
            self._reads_refused: Counter[int] = Counter()
            self._outcomes: dict[str, _Outcome] = {}
            self._forced: dict[str, _ForcedError] = {}
            self._callbacks_delivered = 0
            self._callbacks_failed = 0
            self._callbacks_refused = 0

    def reset(self, *, config: bool = False) -> None:
        """Forget messages, counters, outcomes and forced errors; drop pending callbacks.

        ``config=True`` also restores the constructor's configuration.
        """
        self._dispatcher.clear()
        self._clear_state()
        if config:
            self.configure(**self._initial_config)

    def stop(self, *, drain: bool = True, timeout: float = 10.0) -> None:
        """Deliver what is due (unless ``drain=False``), then stop the callback threads."""
        self._dispatcher.stop(drain=drain, timeout=timeout)

    def wait_for_callbacks(self, timeout: float = 10.0) -> bool:
        """Block until no callback is scheduled or in flight; False on timeout."""
        return self._dispatcher.wait_idle(timeout)

    @property
    def requests_count(self) -> int:
        return self._requests

    @property
    def accepted_count(self) -> int:
        return self._accepted

    @property
    def rejected(self) -> dict[int, int]:
        with self._lock:
            return dict(self._rejected)

    @property
    def rejected_codes(self) -> dict[int, int]:
        with self._lock:
            return dict(self._rejected_codes)

    @property
    def callbacks_delivered(self) -> int:
        return self._callbacks_delivered

    @property
    def callbacks_failed(self) -> int:
        """Callbacks given up after every retry (receiver down or answering 5xx)."""
        return self._callbacks_failed

    @property
    def callbacks_refused(self) -> int:
        """Callbacks the receiver answered with a 4xx."""
        return self._callbacks_refused

    def accepted_by_to(self) -> dict[str, int]:
        with self._lock:
            return dict(self._accepted_by_to)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted messages in Twilio's JSON shape, oldest first (copies)."""
        with self._lock:
            return [dict(self._records[sid].data) for sid in self._order]

    def message(self, sid: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._records.get(sid)
            if record is None:
                return None
            self._settle(record)
            return dict(record.data)

    def request_form(self, sid: str) -> dict[str, str] | None:
        """The form fields exactly as the accepted request carried them."""
        with self._lock:
            record = self._records.get(sid)
            return dict(record.form) if record else None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "accepted": self._accepted,
                "rejected": {str(k): v for k, v in sorted(self._rejected.items())},
                "rejected_codes": {str(k): v for k, v in sorted(self._rejected_codes.items())},
                "accepted_by_to": dict(self._accepted_by_to),
                "callbacks_delivered": self._callbacks_delivered,
                "callbacks_failed": self._callbacks_failed,
                "callbacks_refused": self._callbacks_refused,
                "callbacks_pending": self._dispatcher.pending(),
                "reads": self._reads,
                "reads_refused": {str(k): v for k, v in sorted(self._reads_refused.items())},
                "config": self.config(),
            }

    # --- per-number behaviour for tests -----------------------------------------------

    def set_outcome(self, to: str, final_status: str, error_code: int | None = None) -> None:
        """How messages to ``to`` end: ``delivered``, ``undelivered`` or ``failed``."""
        if final_status not in FINAL_STATUSES:
            raise ValueError(f"final_status must be one of {sorted(FINAL_STATUSES)}")
        if final_status != "delivered" and error_code is None:
            error_code = 30008 if final_status == "failed" else 30003
        with self._lock:
            self._outcomes[to.strip()] = _Outcome(final_status, error_code)

    def force_error(
        self, to: str, http_status: int, code: int, *, times: int | None = None
    ) -> None:
        """Refuse requests to ``to`` with this status and Twilio code (``times`` then accept)."""
        if not 400 <= http_status <= 599:
            raise ValueError(f"{http_status} is not an HTTP error status")
        with self._lock:
            self._forced[to.strip()] = _ForcedError(http_status, code, times)

    def clear_forced(self, to: str | None = None) -> None:
        with self._lock:
            if to is None:
                self._forced.clear()
                self._outcomes.clear()
            else:
                for key in {to.strip(), _bare(to.strip())}:
                    self._forced.pop(key, None)
                    self._outcomes.pop(key, None)

    # --- the Messages API ---------------------------------------------------------------

    def create_message(
        self,
        account_sid: str,
        auth: tuple[str, str] | None,
        form: Mapping[str, str],
        *,
        simulate_latency: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        """``POST /2010-04-01/Accounts/{account_sid}/Messages.json``: (HTTP status, JSON).

        The message is stored before the answer leaves: ``answer_delay`` later (the window
        in which a client that dies or times out does not know it was accepted). The HTTP
        server sleeps the latency and the answer delay itself (without blocking its event
        loop) and passes ``simulate_latency=False``. No callback is posted for the initial
        status; the first is ``sent``, when the queue releases the message.
        """
        if simulate_latency and self.latency:
            time.sleep(self.latency)
        status, payload, record = self._create(account_sid, auth, form)
        if record is not None and record.tracked:
            self._dispatcher.schedule(self.queue_delay, lambda: self._advance(record))
        if simulate_latency and record is not None and self.answer_delay:
            time.sleep(self.answer_delay)
        return status, payload

    def _create(
        self, account_sid: str, auth: tuple[str, str] | None, form: Mapping[str, str]
    ) -> tuple[int, dict[str, Any], _Record | None]:
        with self._lock:
            self._requests += 1
            failure = self._refusal(account_sid, auth, form)
            if failure is not None:
                status, payload = failure
                self._rejected[status] += 1
                self._rejected_codes[int(payload["code"])] += 1
                return status, payload, None
            record = self._accept(account_sid, form)
            return 201, dict(record.data), record

    def _refusal(  # noqa: PLR0911 -- one early answer per check, in Twilio's order
        self, account_sid: str, auth: tuple[str, str] | None, form: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]] | None:
        """The error Twilio would answer, in Twilio's order of checks, or None. Holds the lock."""
        if auth != (self.account_sid, self.auth_token):
            return twilio_error(401, 20003, "Authenticate")
        if account_sid != self.account_sid:
            return twilio_error(
                404,
                20404,
                f"The requested resource /{API_VERSION}/Accounts/{account_sid}/Messages.json "
                "was not found",
            )
        to = form.get("To", "").strip()
        if not to:
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        body = form.get("Body", "")
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            return twilio_error(400, 21602, "Message body is required.")
        sender = form.get("From", "").strip()
        if not sender and not form.get("MessagingServiceSid"):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if len(body) > MAX_BODY:
            return twilio_error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if sender and to.startswith(WHATSAPP_PREFIX) != sender.startswith(WHATSAPP_PREFIX):
            return twilio_error(
                400, 21910, "Invalid From and To pair. From and To should be of the same channel"
            )

        fault = self._draw_fault()
        if fault is not None:
            code = FAULT_CODES.get(fault, 20500 if fault >= 500 else fault)
            text = "Too Many Requests" if fault == 429 else "Service temporarily unavailable"
            return twilio_error(fault, code, text)

        bare = _bare(to)
        key = to if to in self._forced else bare
        forced = self._forced.get(key)
        if forced is not None:
            if forced.remaining is not None:
                forced.remaining -= 1
                if forced.remaining <= 0:
                    del self._forced[key]
            return twilio_error(
                forced.http_status, forced.code, f"Simulated error {forced.code} for {to}"
            )
        magic = MAGIC_NUMBERS.get(bare)
        if magic is not None:
            code, text = magic
            return twilio_error(400, code, text.format(to=to))
        return None

    def _draw_fault(self, rates: Mapping[int, float] | None = None) -> int | None:
        rates = self.error_rates if rates is None else rates
        if not rates:
            return None
        draw = self._rng.random()
        for status, probability in sorted(rates.items()):
            if draw < probability:
                return status
            draw -= probability
        return None

    def _accept(self, account_sid: str, form: Mapping[str, str]) -> _Record:
        """Store and count an accepted message. Holds the lock."""
        sid = "SM" + uuid.uuid4().hex
        to = form["To"].strip()
        service = form.get("MessagingServiceSid") or None
        created = datetime.now(UTC)
        now = _rfc2822(created)
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
        data: dict[str, Any] = {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From") or None,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(count_segments(form.get("Body", "")) if form.get("Body") else 1),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": to,
            "uri": uri,
        }
        outcome = _lookup(self._outcomes, to) or _Outcome("delivered", None)
        tracked = bool(form.get("StatusCallback")) and self.deliver_callbacks
        released = time.monotonic() + self.queue_delay
        record = _Record(
            data=data,
            form=dict(form),
            outcome=outcome,
            created_at=created,
            sent_at=released,
            settle_at=released + self.callback_delay,
            tracked=tracked,
            seq=len(self._order),
        )
        self._records[sid] = record
        self._order.append(sid)
        self._by_to.setdefault(to, []).append(sid)
        self._accepted += 1
        self._accepted_by_to[to] += 1
        return record

    def _settle(self, record: _Record) -> None:
        """Move an untracked message along its life as its times come. Holds the lock."""
        if record.tracked or record.data["status"] in FINAL_STATUSES:
            return
        now = time.monotonic()
        final = record.outcome.final_status
        if now >= record.settle_at or (now >= record.sent_at and final == "failed"):
            self._set_status(record, final)
        elif now >= record.sent_at and record.data["status"] in ("queued", "accepted"):
            self._set_status(record, "sent")

    def _set_status(self, record: _Record, status: str) -> None:
        data = record.data
        data["status"] = status
        moment = datetime.now(UTC)
        data["date_updated"] = _rfc2822(moment)
        if status in ("sent", "delivered", "undelivered") and record.date_sent is None:
            record.date_sent = moment
            data["date_sent"] = data["date_updated"]
            if data["from"] is None:
                data["from"] = SERVICE_SENDER
        if status in ("undelivered", "failed"):
            data["error_code"] = record.outcome.error_code

    def get_message(
        self, account_sid: str, auth: tuple[str, str] | None, sid: str
    ) -> tuple[int, dict[str, Any]]:
        """``GET /2010-04-01/Accounts/{account_sid}/Messages/{sid}.json``."""
        refused = self._read_refusal(account_sid, auth, f"Messages/{sid}.json")
        if refused is not None:
            return refused
        message = self.message(sid)
        if message is None:
            return twilio_error(
                404,
                20404,
                f"The requested resource /{API_VERSION}/Accounts/{account_sid}/Messages/"
                f"{sid}.json was not found",
            )
        return 200, message

    def _read_refusal(
        self, account_sid: str, auth: tuple[str, str] | None, resource: str
    ) -> tuple[int, dict[str, Any]] | None:
        """Authentication, the account, then an injected read fault, as Twilio checks."""
        with self._lock:
            self._reads += 1
            answer: tuple[int, dict[str, Any]] | None = None
            if auth != (self.account_sid, self.auth_token):
                answer = twilio_error(401, 20003, "Authenticate")
            elif account_sid != self.account_sid:
                answer = twilio_error(
                    404,
                    20404,
                    f"The requested resource /{API_VERSION}/Accounts/{account_sid}/{resource} "
                    "was not found",
                )
            else:
                fault = self._draw_fault(self.read_error_rates)
                if fault is not None:
                    code = FAULT_CODES.get(fault, 20500 if fault >= 500 else fault)
                    text = (
                        "Too Many Requests" if fault == 429 else "Service temporarily unavailable"
                    )
                    answer = twilio_error(fault, code, text)
            if answer is not None:
                self._reads_refused[answer[0]] += 1
            return answer

    def list_messages(
        self, account_sid: str, auth: tuple[str, str] | None, query: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """``GET /2010-04-01/Accounts/{account_sid}/Messages.json``: Twilio's filters ``To``,
        ``From``, ``DateSent``, ``DateSent<``, ``DateSent>``; ``PageSize`` (50, at most 1,000)
        and ``PageToken`` paging through ``next_page_uri``; by date sent, most recent first
        (messages not yet sent last)."""
        refused = self._read_refusal(account_sid, auth, "Messages.json")
        if refused is not None:
            return refused
        try:
            size = int(query.get("PageSize") or DEFAULT_PAGE_SIZE)
            dates = {
                key: parse_date_filter(query[key])
                for key in ("DateSent", "DateSent<", "DateSent>")
                if query.get(key)
            }
        except ValueError:
            return twilio_error(400, 20001, "Invalid PageSize or DateSent parameter")
        if not 1 <= size <= MAX_PAGE_SIZE:
            return twilio_error(400, 20001, f"PageSize must be between 1 and {MAX_PAGE_SIZE}")
        to, sender = query.get("To", "").strip(), query.get("From", "").strip()
        with self._lock:
            sids = self._by_to.get(to, []) if to else self._order
            chosen = []
            for sid in sids:
                record = self._records[sid]
                self._settle(record)
                if sender and record.data["from"] != sender:
                    continue
                if dates and not _date_sent_matches(record.date_sent, dates):
                    continue
                chosen.append(record)
            # Twilio's order: by date sent, most recent first. Where it puts messages not
            # yet sent is not documented; here they come last, so a reader that stops early
            # on dates misses them, as it could on Twilio.
            chosen.sort(
                key=lambda r: (r.date_sent is not None, r.date_sent or r.created_at, r.seq),
                reverse=True,
            )
            start = 0
            token = query.get("PageToken", "")
            if token:
                after = token.removeprefix(PAGE_TOKEN_PREFIX)
                positions = [i for i, r in enumerate(chosen) if r.data["sid"] == after]
                if not token.startswith(PAGE_TOKEN_PREFIX) or not positions:
                    return twilio_error(400, 20001, "Invalid PageToken")
                start = positions[0] + 1
            page = [dict(r.data) for r in chosen[start : start + size]]
            more = start + size < len(chosen)
        number = int(query.get("Page") or 0) if (query.get("Page") or "0").isdigit() else 0
        base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        filters = {k: v for k, v in query.items() if k in ("To", "From", *dates) and v}

        def uri(extra: Mapping[str, str | int]) -> str:
            return base + "?" + urlencode({**filters, "PageSize": size, **extra})

        return 200, {
            "messages": page,
            "start": start,
            "end": start + max(len(page), 1) - 1,
            "page": number,
            "page_size": size,
            "uri": uri({"Page": number, **({"PageToken": token} if token else {})}),
            "first_page_uri": uri({"Page": 0}),
            "previous_page_uri": None,
            "next_page_uri": (
                uri({"Page": number + 1, "PageToken": PAGE_TOKEN_PREFIX + page[-1]["sid"]})
                if more and page
                else None
            ),
        }

    # --- status callbacks ---------------------------------------------------------------

    def _advance(self, record: _Record) -> None:
        """One step of a tracked message's life; schedules the next after it is posted."""
        with self._lock:
            if self._records.get(record.data["sid"]) is not record:
                return  # forgotten by reset()
            current = record.data["status"]
            final = record.outcome.final_status
            if current in FINAL_STATUSES:
                return
            step = "sent" if current in ("queued", "accepted") and final != "failed" else final
            self._set_status(record, step)
            params = self._callback_params(record.data, step, record.outcome.error_code)
            url = record.form["StatusCallback"]
            deliver = self.deliver_callbacks
            generation = self._generation

        def after() -> None:
            if step not in FINAL_STATUSES:
                self._dispatcher.schedule(self.callback_delay, lambda: self._advance(record))

        if deliver:
            self._post_with_retries(url, params, generation=generation, attempt=0, then=after)
        else:
            after()

    def _callback_params(
        self, data: Mapping[str, Any], status: str, error_code: int | None
    ) -> dict[str, str]:
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

    def _post_with_retries(
        self,
        url: str,
        params: dict[str, str],
        *,
        generation: int,
        attempt: int,
        then: Callable[[], None],
    ) -> None:
        """Post one callback; on a connection error or 5xx, try again later from the queue."""
        if generation != self._generation:
            return  # reset() since: the message is forgotten
        status = self._post_signed(url, params)
        if status is not None and status < 500:
            with self._lock:
                if generation != self._generation:
                    return
                if status < 400:
                    self._callbacks_delivered += 1
                else:  # the receiver refused it (a bad signature?): retrying cannot help
                    self._callbacks_refused += 1
            then()
            return
        if attempt < len(CALLBACK_RETRY_DELAYS):
            self._dispatcher.schedule(
                CALLBACK_RETRY_DELAYS[attempt],
                lambda: self._post_with_retries(
                    url, params, generation=generation, attempt=attempt + 1, then=then
                ),
            )
            return
        with self._lock:
            if generation != self._generation:
                return
            self._callbacks_failed += 1
        then()

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """``X-Twilio-Signature`` for a form POST of ``params`` to ``url``."""
        return str(self.validator.compute_signature(url, dict(params)))

    def _post_signed(self, url: str, params: Mapping[str, str]) -> int | None:
        """POST a signed webhook; the receiver's status, or None if it could not be reached."""
        headers = {
            "X-Twilio-Signature": self.sign(url, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            response = self._dispatcher.pool.request(
                "POST", url, body=urlencode(params), headers=headers, timeout=CALLBACK_TIMEOUT
            )
        except urllib3.exceptions.HTTPError:
            return None
        return int(response.status)

    def send_callback(self, sid: str, status: str, error_code: int | None = None) -> int | None:
        """Post one extra status callback for ``sid`` now (duplicates, out-of-order tests).

        Does not change the stored message. Returns the receiver's HTTP status, or None if
        it could not be reached; raises KeyError for an unknown SID or one without a
        StatusCallback.
        """
        with self._lock:
            record = self._records[sid]
            url = record.form.get("StatusCallback")
            if not url:
                raise KeyError(f"{sid} has no StatusCallback")
            params = self._callback_params(record.data, status, error_code)
        return self._post_signed(url, params)

    def inject_inbound(
        self, to_webhook_url: str, from_: str, to: str, body: str
    ) -> tuple[int | None, str]:
        """Post a signed inbound-message webhook, as Twilio does when someone texts ``to``.

        Returns the receiver's HTTP status (None if unreachable) and its answer (TwiML).
        """
        sid = "SM" + uuid.uuid4().hex
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": str(count_segments(body) if body else 1),
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
        }
        headers = {
            "X-Twilio-Signature": self.sign(to_webhook_url, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        try:
            response = self._dispatcher.session.post(
                to_webhook_url, data=params, headers=headers, timeout=CALLBACK_TIMEOUT
            )
        except requests.RequestException:
            return None, ""
        return response.status_code, response.text


def _date_sent_matches(
    date_sent: datetime | None, filters: Mapping[str, tuple[datetime, bool]]
) -> bool:
    """Twilio's ``DateSent`` filters: ``DateSent`` the same GMT day, ``DateSent>`` on or
    after the moment (midnight for a bare date), ``DateSent<`` on or before it. A message
    not yet sent has no ``date_sent`` and matches none of them."""
    if date_sent is None:
        return False
    for key, (moment, _date_only) in filters.items():
        if key == "DateSent" and date_sent.date() != moment.date():
            return False
        if key == "DateSent>" and date_sent < moment:
            return False
        if key == "DateSent<" and date_sent > moment:
            return False
    return True


# Keyword arguments of ``client.messages.create`` -> the form fields the SDK sends.
_SDK_FORM_NAMES = {
    "to": "To",
    "from_": "From",
    "messaging_service_sid": "MessagingServiceSid",
    "body": "Body",
    "status_callback": "StatusCallback",
    "validity_period": "ValidityPeriod",
}


class SimulatorProvider:
    """The in-process gateway: same form as the SDK, same errors as ``TwilioProvider``."""

    name = "simulator"

    def __init__(
        self,
        core: SimulatorCore,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
    ) -> None:
        if not messaging_service_sid and not from_number:
            raise ValueError("either messaging_service_sid or from_number is required")
        self.core = core
        self.account_sid = account_sid
        self._auth = (account_sid, auth_token)
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid

    def send(self, message: OutboundMessage) -> ProviderResult:
        params = create_params(
            message,
            from_number=self.from_number,
            messaging_service_sid=self.messaging_service_sid,
        )
        form = {_SDK_FORM_NAMES[key]: str(value) for key, value in params.items()}
        status, payload = self.core.create_message(self.account_sid, self._auth, form)
        if not 200 <= status < 300:
            # As twilio-python does: the body's code, else the HTTP status.
            raise error_from_response(int(payload.get("code", status)), status)
        return ProviderResult(sid=str(payload["sid"]), status=str(payload["status"]))

    def fetch(self, sid: str) -> ProviderStatus:
        status, payload = self.core.get_message(self.account_sid, self._auth, sid)
        if not 200 <= status < 300:
            raise error_from_response(int(payload.get("code", status)), status)
        code = payload.get("error_code")
        return ProviderStatus(str(payload["status"]), int(code) if code else None)

    def messages_to(
        self, to: str, since: datetime, *, pace: Callable[[], object] | None = None
    ) -> Lookup:
        sender, keep = lookup_sender(
            to, from_number=self.from_number, messaging_service_sid=self.messaging_service_sid
        )
        query = {"To": to, "PageSize": str(LOOKUP_PAGE_SIZE)}
        if sender:
            query["From"] = sender

        def pages() -> Iterator[list[ProviderMessage]]:
            token = ""
            while True:
                if pace:
                    pace()
                status, payload = self.core.list_messages(
                    self.account_sid,
                    self._auth,
                    {**query, **({"PageToken": token} if token else {})},
                )
                if status != 200:
                    raise error_from_response(int(payload.get("code", status)), status)
                yield [message_from_json(m) for m in payload["messages"]]
                if not payload["next_page_uri"]:
                    return
                token = PAGE_TOKEN_PREFIX + payload["messages"][-1]["sid"]

        return collect_lookup(pages(), since, keep)


def message_from_json(data: Mapping[str, Any]) -> ProviderMessage:
    """A message of the read API's JSON (Twilio's shape) as the provider interface has it."""
    code = data.get("error_code")
    return ProviderMessage(
        sid=str(data["sid"]),
        to=str(data["to"]),
        sender=data.get("from") or None,
        messaging_service_sid=data.get("messaging_service_sid") or None,
        body=str(data.get("body") or ""),
        status=str(data["status"]),
        error_code=int(code) if code else None,
        created_at=datetime.strptime(str(data["date_created"]), RFC2822).replace(tzinfo=UTC),
    )
