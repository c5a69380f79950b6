"""One campaign end to end through the CLI, a real Celery worker and scheduler on Redis,
the real twilio SDK against the HTTP simulator, and signed status callbacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import THREE_LANGUAGES
from tests.stack import Stack, write_template

pytestmark = pytest.mark.pipeline


@pytest.fixture(params=["postgresql", "sqlite"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, db=request.param)
    try:
        yield s
    except Exception:
        print(s.dump_logs())
        raise
    finally:
        s.stop()


def test_three_people_three_languages_delivered(stack: Stack, tmp_path: Path) -> None:
    stack.start_worker()
    stack.start_scheduler()
    stack.cli(
        "communities",
        "add",
        "laos",
        "--name",
        "Lao PDR",
        "--country",
        "LA",
        "--language",
        "lo",
        "--kind",
        "country",
    )
    stack.cli(
        "communities", "add", "bokeo", "--name", "Bokeo", "--parent", "laos", "--kind", "province"
    )
    stack.cli("contacts", "add", "020 5555 1234", "--language", "lo", "--community", "bokeo")
    stack.cli("contacts", "add", "+66 81 234 5678", "--language", "th", "--community", "bokeo")
    added = stack.cli(
        "contacts", "add", "+856 20 7777 8899", "--language", "en", "--community", "laos"
    )
    assert "+856 20 ••• ••99" in added.stdout and "77778899" not in added.stdout
    stack.cli("templates", "load", str(write_template(tmp_path / "t.yaml", THREE_LANGUAGES)))
    created = stack.cli(
        "campaigns",
        "create",
        "--name",
        "Testing",
        "--template",
        "covid-test",
        "--community",
        "laos",
        "--var",
        "hotline=166",
    )
    campaign_id = int(created.stdout.strip().splitlines()[-1])
    stack.cli("campaigns", "launch", str(campaign_id))

    status = stack.wait_completed(campaign_id, delivered=3, timeout=90)
    assert status["counts"]["delivered"] == 3
    # exactly one provider request per person, each in their own language
    assert stack.core.accepted_by_to() == {
        "+8562055551234": 1,
        "+66812345678": 1,
        "+8562077778899": 1,
    }
    bodies = {m["to"]: m["body"] for m in stack.core.messages}
    assert bodies["+8562055551234"] == "ມີການກວດ COVID-19 ຟຣີ. ໂທ 166."
    assert bodies["+66812345678"] == "มีบริการตรวจโควิด-19 ฟรี โทร 166"
    assert bodies["+8562077778899"] == "Free COVID-19 testing is available. Call 166."
    shown = json.loads(stack.cli("campaigns", "status", str(campaign_id), "--json").stdout)
    assert shown["state"] == "completed" and shown["counts"]["delivered"] == 3
    for log in stack.logs:
        text = log.read_text(errors="replace")
        assert "55551234" not in text and "2345678" not in text, f"a full number in {log.name}"


def test_whatsapp_that_cannot_reach_a_person_falls_back_to_one_sms(
    stack: Stack, tmp_path: Path
) -> None:
    """Each person on their own channel; WhatsApp fails for one of them (a signed `failed`
    callback with 63003 from the simulator), and that person gets the same text by SMS."""
    stack.start_worker()
    stack.start_scheduler()
    stack.cli("communities", "add", "laos", "--name", "Lao PDR", "--country", "LA")
    on_whatsapp, no_whatsapp, sms_only = "+8562055552001", "+8562055552002", "+66812342003"
    for phone, channel in ((on_whatsapp, "whatsapp"), (no_whatsapp, "whatsapp"), (sms_only, "sms")):
        stack.cli("contacts", "add", phone, "--community", "laos", "--channel", channel)
    stack.core.set_outcome(f"whatsapp:{no_whatsapp}", "failed", 63003)
    stack.cli("templates", "load", str(write_template(tmp_path / "t.yaml", THREE_LANGUAGES)))
    created = stack.cli(
        "campaigns", "create", "--name", "Preferred", "--template", "covid-test",
        "--community", "laos", "--channel", "preferred", "--var", "hotline=166",
    )  # fmt: skip
    campaign_id = int(created.stdout.strip().splitlines()[-1])
    stack.cli("campaigns", "launch", str(campaign_id))

    status = stack.wait_completed(campaign_id, delivered=3, timeout=90)
    assert status["counts"]["delivered"] == 3 and status["counts"]["failed"] == 1
    assert stack.core.accepted_by_to() == {
        f"whatsapp:{on_whatsapp}": 1,
        f"whatsapp:{no_whatsapp}": 1,
        no_whatsapp: 1,
        sms_only: 1,
    }
    bodies = {m["to"]: m["body"] for m in stack.core.messages}
    assert bodies[no_whatsapp] == bodies[f"whatsapp:{no_whatsapp}"]
