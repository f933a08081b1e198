"""`flask campaigns ...`: one-line answers and errors, and a progress bar that follows the
campaign until it ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from outbound import cli as campaigns_cli
from sandbox.phone_network import example


@pytest.fixture
def contacts_csv(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(f"number,timezone,name\n{example('answered', 0)},Europe/London,Ada\n"
                    f"{example('busy', 0)},,Bob\n{example('busy', 0)},,Bob twice\n")
    return path


def created_id(runner, contacts_csv: Path, *extra: str) -> str:
    result = runner.invoke(args=["campaigns", "create", str(contacts_csv), "--persona",
                                 "appointments", *extra])
    assert result.exit_code == 0, result.output
    assert "2 contacts (1 duplicate numbers left out)" in result.output
    return result.output.split()[1]


def test_create_list_and_status(runner, contacts_csv):
    cid = created_id(runner, contacts_csv, "--days", "fri-mon", "--window", "08:30-18:00",
                     "--delay", "busy=60", "--delay", "voicemail=none")
    status = runner.invoke(args=["campaigns", "status", cid])
    assert status.exit_code == 0
    assert status.output.strip() == f"{cid}  active  appointments  0/2 done  (pending 2)"
    listed = runner.invoke(args=["campaigns", "list"])
    assert cid in listed.output
    app_status = runner.app.extensions["outbound"].status(cid)
    assert app_status["window"] == {"start": "08:30", "end": "18:00",
                                    "days": ["mon", "fri", "sat", "sun"]}
    assert app_status["retry"]["delay_s"] == {"busy": 60.0, "no_answer": 3600.0,
                                              "failed": 1800.0, "voicemail": None}


def test_pause_resume_cancel_and_their_errors(runner, contacts_csv):
    cid = created_id(runner, contacts_csv)
    assert "  paused  " in runner.invoke(args=["campaigns", "pause", cid]).output
    again = runner.invoke(args=["campaigns", "pause", cid])
    assert again.exit_code == 1
    assert again.output.strip() == f"campaigns: campaign {cid} is paused: it cannot pause"
    assert "  active  " in runner.invoke(args=["campaigns", "resume", cid]).output
    assert "cancelled 2" in runner.invoke(args=["campaigns", "cancel", cid]).output
    missing = runner.invoke(args=["campaigns", "status", "cmp_nope"])
    assert (missing.exit_code, missing.output.strip()) == (1, "campaigns: no campaign cmp_nope")


def test_a_wrong_file_or_persona_is_one_line(runner, contacts_csv, tmp_path):
    wrong = runner.invoke(args=["campaigns", "create", str(contacts_csv), "--persona",
                                "support"])
    assert wrong.exit_code == 1 and len(wrong.output.strip().splitlines()) == 1
    assert "[outbound] section" in wrong.output
    bad = tmp_path / "bad.csv"
    bad.write_text("number\nnot-a-number\n")
    result = runner.invoke(args=["campaigns", "create", str(bad), "--persona", "appointments"])
    assert result.exit_code == 1 and result.output.startswith("campaigns: CSV line 2: number")
    days = runner.invoke(args=["campaigns", "create", str(contacts_csv), "--persona",
                               "appointments", "--days", "someday-friday"])
    assert days.exit_code == 1 and "--days" in days.output
    delay = runner.invoke(args=["campaigns", "create", str(contacts_csv), "--persona",
                                "appointments", "--delay", "busy=soon"])
    assert delay.exit_code == 1 and "--delay 'busy=soon'" in delay.output
    unknown = runner.invoke(args=["campaigns", "create", str(contacts_csv), "--persona",
                                  "appointments", "--delay", "answered=5"])
    assert unknown.exit_code == 1 and "retry.delay_s takes" in unknown.output


def test_watch_shows_progress_until_the_campaign_ends(runner, contacts_csv, monkeypatch):
    cid = created_id(runner, contacts_csv)
    service = runner.app.extensions["outbound"]
    steps = iter(["pause", "cancel"])

    def a_round_passes(_seconds: float) -> None:
        service.control(cid, next(steps))

    monkeypatch.setattr(campaigns_cli.time, "sleep", a_round_passes)
    result = runner.invoke(args=["campaigns", "status", cid, "--watch"])
    assert result.exit_code == 0
    assert cid in result.output and "2/2" in result.output  # the bar, full at the end
    assert result.output.strip().endswith("2/2 done  (cancelled 2)")
