"""The simulator's core: Twilio's Messages API semantics, in memory.

:class:`SimulatorCore` answers a create-message request the way Twilio does (same JSON,
same error codes, Twilio's test magic numbers), keeps the messages for the read API,
moves each along its life on Twilio's timing, injects faults on demand and counts
everything tests assert on. Its status callbacks are posted by :mod:`.callbacks`;
:mod:`.server` puts it behind HTTP for the real SDK; ``SimulatorProvider``
(:mod:`.provider`) calls it in-process.

It is no kinder than Twilio in what riskcast relies on:

- no callback for a message's initial status (``queued``, or ``accepted`` through a
  messaging service); the message stays there for ``queue_delay`` seconds (Twilio's queue
  holding it behind a sender's MPS), then ``sent``, then ``callback_delay`` later its final
  status, each with a callback;
- ``answer_delay``: the message is stored (and will be sent) that long before the answer
  leaves, so a client killed or timed out in between does not know it was accepted;
- the read API (``GET Messages.json`` with Twilio's filters and paging, ``GET
  Messages/{Sid}.json``) with its own injected error rate; a ``DateSent`` filter never
  matches a message Twilio has not sent yet, as on Twilio, where ``date_sent`` is empty;
- ``num_segments`` as Twilio counts it (:func:`messages.segments`).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from messages import segments
from workers.providers.simulator.callbacks import (
    CALLBACK_THREADS,
    StatusCallbacks,
    callback_params,
    inbound_params,
)
from workers.providers.simulator.protocol import (
    API_VERSION,
    DEFAULT_PAGE_SIZE,
    FINAL_STATUSES,
    MAGIC_NUMBERS,
    MAX_BODY,
    MAX_PAGE_SIZE,
    PAGE_TOKEN_PREFIX,
    SERVICE_SENDER,
    date_sent_matches,
    fault_error,
    parse_date_filter,
    rfc2822,
    twilio_error,
)
from workers.providers.twilio import WHATSAPP_PREFIX


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
        self._callbacks = StatusCallbacks(auth_token, callback_threads)
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
            self._callbacks.forget()
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

    def reset(self, *, config: bool = False) -> None:
        """Forget messages, counters, outcomes and forced errors; drop pending callbacks.

        ``config=True`` also restores the constructor's configuration.
        """
        self._callbacks.queue.clear()
        self._clear_state()
        if config:
            self.configure(**self._initial_config)

    def stop(self, *, drain: bool = True, timeout: float = 10.0) -> None:
        """Deliver what is due (unless ``drain=False``), then stop the callback threads."""
        self._callbacks.queue.stop(drain=drain, timeout=timeout)

    def wait_for_callbacks(self, timeout: float = 10.0) -> bool:
        """Block until no callback is scheduled or in flight; False on timeout."""
        return self._callbacks.queue.wait_idle(timeout)

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
        return self._callbacks.delivered

    @property
    def callbacks_failed(self) -> int:
        """Callbacks given up after every retry (receiver down or answering 5xx)."""
        return self._callbacks.failed

    @property
    def callbacks_refused(self) -> int:
        """Callbacks the receiver answered with a 4xx."""
        return self._callbacks.refused

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
                "callbacks_delivered": self._callbacks.delivered,
                "callbacks_failed": self._callbacks.failed,
                "callbacks_refused": self._callbacks.refused,
                "callbacks_pending": self._callbacks.queue.pending(),
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
            self._callbacks.queue.schedule(self.queue_delay, lambda: self._advance(record))
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
            return fault_error(fault)

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
        now = rfc2822(created)
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
            "num_segments": str(segments(form.get("Body", "")).parts),
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
        data["date_updated"] = rfc2822(moment)
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
                    answer = fault_error(fault)
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
                if dates and not date_sent_matches(record.date_sent, dates):
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
            params = callback_params(record.data, step, record.outcome.error_code)
            url = record.form["StatusCallback"]
            deliver = self.deliver_callbacks
            generation = self._callbacks.generation

        def after() -> None:
            if step not in FINAL_STATUSES:
                self._callbacks.queue.schedule(self.callback_delay, lambda: self._advance(record))

        if deliver:
            self._callbacks.post(url, params, generation=generation, then=after)
        else:
            after()

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """``X-Twilio-Signature`` for a form POST of ``params`` to ``url``."""
        return self._callbacks.sign(url, params)

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
            params = callback_params(record.data, status, error_code)
        return self._callbacks.post_signed(url, params)

    def inject_inbound(
        self, to_webhook_url: str, from_: str, to: str, body: str
    ) -> tuple[int | None, str]:
        """Post a signed inbound-message webhook, as Twilio does when someone texts ``to``.

        Returns the receiver's HTTP status (None if unreachable) and its answer (TwiML).
        """
        params = inbound_params(self.account_sid, "SM" + uuid.uuid4().hex, from_, to, body)
        return self._callbacks.post_inbound(to_webhook_url, params)
