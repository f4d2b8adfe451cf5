"""``smithers signal``: payload checked, oldest waiter first, early signals ignored, resume."""

from __future__ import annotations

import json
import re
import textwrap
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

BODY = """
    import msgspec
    from smithers import Approval, Parallel, Sequence, Task, WaitForEvent, workflow

    class Ci(msgspec.Struct):
        ok: bool

    @workflow("ci")
    def ci(ctx):
        return Sequence(
            Approval("gate"),
            Parallel(
                WaitForEvent("first", event="ci.done", output=Ci),
                WaitForEvent("second", event="ci.done", output=Ci),
                WaitForEvent("pay", event="paid", correlation_id="order-42"),
            ),
            Task("after", output=dict, value={"done": True}),
        )
"""


@pytest.fixture
def ci_flow(flows: Path) -> Path:
    path = flows / "ci.py"
    path.write_text(textwrap.dedent(BODY), encoding="utf-8")
    return path


def test_signal_cycle(ci_flow: Path, cli: Any, procs: Any, log: Any, helpers: Any) -> None:
    up = procs.smithers("up", str(ci_flow), "--run-id", "s1")
    _, err = up.communicate(timeout=60)
    assert up.returncode == 3, err

    # Sent while the run waits for its approval: no node waits for it yet.
    early = cli("signal", "s1", "ci.done", "--data", '{"ok": true}')
    assert early.exit_code == 0, early.output
    assert "no node waits for 'ci.done' in run s1; recorded, resolves nothing" in (
        early.stdout.lower()
    )
    assert cli("approve", "s1", "--no-resume").exit_code == 0
    parked = cli("up", "--resume", "s1")
    assert parked.exit_code == 3
    assert "smithers signal s1 ci.done --data JSON" in parked.stdout
    assert "smithers signal s1 paid --data JSON --correlation order-42" in parked.stdout
    state = log.state("s1")
    assert state.nodes[("first", 0)].state == "waiting-event"  # the early one did not count

    before = log.last_seq("s1")
    bad = cli("signal", "s1", "ci.done", "--data", '{"ok": "yes"}')
    assert bad.exit_code == 4
    assert bad.stderr.startswith("Error [INVALID_INPUT]")
    assert "'first'" in bad.stderr
    not_json = cli("signal", "s1", "ci.done", "--data", "{nope")
    assert not_json.exit_code == 4
    assert not_json.stderr.startswith("Error [INVALID_INPUT]: --data is not valid JSON")
    assert log.last_seq("s1") == before  # nothing recorded

    one = cli("signal", "s1", "ci.done", "--data", '{"ok": true}', "--no-resume", "--json")
    assert json.loads(one.stdout)["deliveredTo"] == {"nodeId": "first", "iteration": 0}
    other = cli("signal", "s1", "paid", "--data", "{}", "--correlation", "order-7", "--json")
    assert json.loads(other.stdout)["deliveredTo"] is None
    paid = cli("signal", "s1", "paid", "--data", '{"amount": 3}', "--correlation", "order-42")
    assert "delivered to pay" in paid.stdout
    assert "stays parked" in paid.stdout or "Resumed" in paid.stdout
    m = re.search(r"\(pid (\d+)\)", paid.stdout)
    if m:  # a resume started: it parks again (second still waits)
        procs.track(int(m.group(1)))
        helpers.wait_until(
            lambda: log.status("s1") == "waiting-event" and log.state("s1").owner_id == "",
            "the resume to park again",
        )
    last = cli("signal", "s1", "ci.done", "--data", '{"ok": false}', "--by", "ci-bot", "--json")
    assert last.exit_code == 0, last.output
    body = json.loads(last.stdout)
    assert body["deliveredTo"] == {"nodeId": "second", "iteration": 0}
    if body["resumed"] is not None:
        procs.track(body["resumed"]["pid"])
    helpers.wait_until(lambda: log.status("s1") in ("finished", "failed"), "the run to end")
    state = log.state("s1")
    assert state.status == "finished", state.error
    outputs = {k: json.loads(bytes(v)) for k, v in state.outputs().items()}
    assert outputs["first"] == {"ok": True}
    assert outputs["second"] == {"ok": False}
    assert outputs["pay"] == {"amount": 3}
    assert outputs["after"] == {"done": True}

    inspected = json.loads(cli("inspect", "s1", "--json").stdout)
    second = next(n for n in inspected["nodes"] if n["nodeId"] == "second")
    assert second["wait"]["eventName"] == "ci.done"
    assert second["wait"]["received"] is True
    assert second["wait"]["sentBy"] == "ci-bot"


def test_signal_bad_names_exit_4(ci_flow: Path, cli: Any) -> None:
    assert cli.up("ci.py", "--run-id", "s2").exit_code == 3
    res = cli("signal", "s2", "bad\nname")
    assert res.exit_code == 4
    assert res.stderr.startswith("Error [INVALID_INPUT]")
    missing = cli("signal", "nope", "x")
    assert missing.exit_code == 4
    assert missing.stderr.startswith("Error [RUN_NOT_FOUND]")
