"""Log masking: no full phone number reaches any handler, riskcast's or a library's."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from broadcaster.logging import PhoneMaskingFilter, configure_logging
from broadcaster.phones import PhoneError
from broadcaster.users import auth
from tests.services import migrated_database
from tests.stack import api_process

LAO = "+8562055551234"
LAO_MASKED = "+856 20 ••• ••34"


class ListHandler(logging.Handler):
    """Keeps what a real handler would write, formatted, plus the raw records."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[ListHandler]:
    handler = ListHandler()
    handler.addFilter(PhoneMaskingFilter())
    logger = logging.getLogger("riskcast.test.masking")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def log() -> logging.Logger:
    return logging.getLogger("riskcast.test.masking")


def test_masks_number_passed_as_argument(captured: ListHandler) -> None:
    log().info("sent to %s", LAO)
    assert captured.lines == [f"INFO riskcast.test.masking: sent to {LAO_MASKED}"]
    record = captured.records[0]
    assert record.msg == f"sent to {LAO_MASKED}"
    assert record.args == ()


def test_masks_number_in_the_message_itself_and_in_mapping_args(captured: ListHandler) -> None:
    log().warning("inbound from whatsapp:+66812345678")
    log().warning("to %(to)s from %(from)s", {"to": LAO, "from": "081-234-5678"})
    assert captured.lines[0].endswith("inbound from whatsapp:+66 81 ••• ••78")
    assert captured.lines[1].endswith(f"to {LAO_MASKED} from •••-•••-••78")


def test_masks_numbers_in_exceptions(captured: ListHandler) -> None:
    try:
        raise RuntimeError(f"Twilio 21211: invalid 'To' number {LAO} (typed 020 5555 1234)")
    except RuntimeError:
        log().exception("send failed for %s", LAO)
    text = captured.lines[0]
    assert "Traceback" in text
    assert "RuntimeError: Twilio 21211: invalid 'To' number" in text
    assert LAO_MASKED in text
    assert "••• •••• ••34" in text
    assert "5555" not in text
    assert "2055551234" not in text
    # the raw exception object is gone, so no later formatter can print it again
    assert captured.records[0].exc_info is None


def test_masks_stack_info_and_extra_fields(captured: ListHandler) -> None:
    log().info("with stack", stack_info=True, extra={"phone": LAO, "count": 12})
    record = captured.records[0]
    assert record.phone == LAO_MASKED  # type: ignore[attr-defined]
    assert record.count == 12  # type: ignore[attr-defined]
    assert record.stack_info is not None


@pytest.mark.parametrize(
    "message",
    [
        "call the hotline 1166",
        "campaign 12 due 2026-11-28 at 10:12:33",
        "200,000 returned migrant workers; 3 segments each",
        "Twilio error 30008 for delivery 4711",
    ],
)
def test_leaves_ordinary_numbers_alone(captured: ListHandler, message: str) -> None:
    log().info("%s", message)
    assert captured.records[0].getMessage() == message


def test_bad_format_arguments_are_still_logged_masked(captured: ListHandler) -> None:
    log().info("two args %s %s", LAO)
    text = captured.lines[0]
    assert "5555" not in text
    assert LAO_MASKED in text


def test_filter_twice_is_harmless(captured: ListHandler) -> None:
    captured.addFilter(PhoneMaskingFilter())
    try:
        raise PhoneError("landline, SMS cannot reach it")
    except PhoneError:
        log().exception("for %s", LAO)
    assert captured.lines[0].startswith(f"ERROR riskcast.test.masking: for {LAO_MASKED}\n")


@pytest.fixture
def root_clean() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


def _ours(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if any(isinstance(f, PhoneMaskingFilter) for f in h.filters)]


def test_configure_logging_is_idempotent_and_sets_level(root_clean: logging.Logger) -> None:
    configure_logging("debug")
    configure_logging("WARNING")
    ours = _ours(root_clean)
    assert len(ours) == 1
    assert len(ours[0].filters) == 1
    assert root_clean.level == logging.WARNING
    configure_logging(logging.INFO)
    assert len(_ours(root_clean)) == 1
    assert root_clean.level == logging.INFO


def test_configure_logging_masks_third_party_loggers(root_clean: logging.Logger) -> None:
    configure_logging("INFO")
    (handler,) = _ours(root_clean)
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    logging.getLogger("celery.worker.strategy").info("Task send[1] to %s", LAO)
    logging.getLogger("twilio.rest").warning("POST To=%s Body=...", "+66812345678")
    logging.getLogger("uvicorn.error").warning("hotline 1166 on 2026-11-28")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(f"INFO celery.worker.strategy: Task send[1] to {LAO_MASKED}")
    assert lines[1].endswith("WARNING twilio.rest: POST To=+66 81 ••• ••78 Body=...")
    assert lines[2].endswith("WARNING uvicorn.error: hotline 1166 on 2026-11-28")
    # "%(asctime)s %(levelname)s %(name)s: %(message)s"
    date, _time, level, rest = lines[0].split(" ", 3)
    assert len(date) == 10
    assert level == "INFO"
    assert rest.startswith("celery.worker.strategy: ")
    assert "2055551234" not in stream.getvalue()
    assert "12345678" not in stream.getvalue()


def test_the_access_log_of_a_running_api_shows_no_whole_number(tmp_path: Path) -> None:
    """`riskcast api` in its own process prints every request; a number searched for in a
    URL, percent-encoded or spaced out, reaches that log masked."""
    with migrated_database("sqlite", str(tmp_path)) as (url, engine):
        with Session(engine) as session:
            user = auth.create_user(session, "olivia", role="official")
            _, token = auth.issue_token(session, user)
            session.commit()
        with api_process(tmp_path, url, log_level="INFO") as (port, _proc, log_file):
            headers = {"Authorization": f"Bearer {token}"}
            base = f"http://127.0.0.1:{port}/api/v1/contacts?q="
            for query in ("%2B8562055551234", "0%202%200%205%205%205%205%201%202%203%204"):
                assert httpx.get(base + query, headers=headers, timeout=10).status_code == 200
    printed = log_file.read_text(encoding="utf-8")
    assert printed.count("/api/v1/contacts") >= 2, printed  # the requests were logged
    for whole in ("8562055551234", "2B8562055551234", "5555", "5%205%205%205"):
        assert whole not in printed, printed
