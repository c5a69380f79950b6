"""A Twilio-compatible Messages API in miniature, for the quick start, tests and benchmarks.

:class:`SimulatorCore` is the logic: it answers a create-message request the way Twilio
does (same JSON, same error codes, Twilio's test magic numbers), injects faults on
demand, counts everything tests assert on, and posts signed status callbacks from a small
pool of background threads. ``simulator_server`` puts it behind HTTP for the real SDK;
:class:`SimulatorProvider` calls it in-process and fails exactly as ``TwilioProvider`` does.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter
from twilio.request_validator import RequestValidator

from workers.providers.base import OutboundMessage, ProviderResult, ProviderStatus
from workers.providers.errors import error_from_response
from workers.providers.twilio import WHATSAPP_PREFIX, create_params

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


def _rfc2822_now() -> str:
    return datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


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
    settle_at: float  # when a message without callbacks reaches its final status
    tracked: bool  # statuses advance through scheduled callbacks


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
        }
        self.error_rates: dict[int, float] = {}
        self.latency = 0.0
        self.deliver_callbacks = True
        self.callback_delay = 0.05
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
    ) -> None:
        """Change behaviour at run time; arguments left ``None`` keep their value."""
        if error_rates is not None:
            rates = {int(status): float(p) for status, p in error_rates.items()}
            for status, p in rates.items():
                if not 400 <= status <= 599:
                    raise ValueError(f"error_rates: {status} is not an HTTP error status")
                if not 0.0 <= p <= 1.0:
                    raise ValueError(f"error_rates: {status}: {p} is not a probability")
            if sum(rates.values()) > 1.0 + 1e-9:
                raise ValueError("error_rates: probabilities add up to more than 1")
            self.error_rates = rates
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

        The HTTP server sleeps the configured latency itself (without blocking its event
        loop) and passes ``simulate_latency=False``.
        """
        if simulate_latency and self.latency:
            time.sleep(self.latency)
        status, payload, record = self._create(account_sid, auth, form)
        if record is not None and record.tracked:
            self._dispatcher.schedule(self.callback_delay, lambda: self._advance(record))
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

    def _draw_fault(self) -> int | None:
        if not self.error_rates:
            return None
        draw = self._rng.random()
        for status, probability in sorted(self.error_rates.items()):
            if draw < probability:
                return status
            draw -= probability
        return None

    def _accept(self, account_sid: str, form: Mapping[str, str]) -> _Record:
        """Store and count an accepted message. Holds the lock."""
        sid = "SM" + uuid.uuid4().hex
        to = form["To"].strip()
        service = form.get("MessagingServiceSid") or None
        now = _rfc2822_now()
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
        record = _Record(
            data=data,
            form=dict(form),
            outcome=outcome,
            settle_at=time.monotonic() + 2 * self.callback_delay,
            tracked=tracked,
        )
        self._records[sid] = record
        self._order.append(sid)
        self._accepted += 1
        self._accepted_by_to[to] += 1
        return record

    def _settle(self, record: _Record) -> None:
        """Move an untracked message to its final status once its time has come. Holds the lock."""
        if record.tracked or record.data["status"] in FINAL_STATUSES:
            return
        if time.monotonic() >= record.settle_at:
            self._set_status(record, record.outcome.final_status)

    def _set_status(self, record: _Record, status: str) -> None:
        data = record.data
        data["status"] = status
        data["date_updated"] = _rfc2822_now()
        if status == "sent":
            data["date_sent"] = data["date_updated"]
            if data["from"] is None:
                data["from"] = SERVICE_SENDER
        if status in ("undelivered", "failed"):
            data["error_code"] = record.outcome.error_code

    def get_message(
        self, account_sid: str, auth: tuple[str, str] | None, sid: str
    ) -> tuple[int, dict[str, Any]]:
        """``GET /2010-04-01/Accounts/{account_sid}/Messages/{sid}.json``."""
        if auth != (self.account_sid, self.auth_token):
            return twilio_error(401, 20003, "Authenticate")
        message = self.message(sid) if account_sid == self.account_sid else None
        if message is None:
            return twilio_error(
                404,
                20404,
                f"The requested resource /{API_VERSION}/Accounts/{account_sid}/Messages/"
                f"{sid}.json was not found",
            )
        return 200, message

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
