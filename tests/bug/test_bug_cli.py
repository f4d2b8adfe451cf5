"""``smithers bug --run RUN``: the bundle's contents, its scrubbing, and posting it.

A real failing run (``leaky.py``: 40 tasks, then one that fails with secrets in its
error, its input and its source) is made once per module with ``smithers up`` in a
process; every ``smithers bug`` is a process too, with secrets in its environment.
Posting goes to a local ``http.server`` on 127.0.0.1 (`bug_server`).
"""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import anyio
import pytest
from smithers.engine import SMITHERS_VERSION, BugReport, file_bug

ENV_SECRET = "planted-env-secret-7731"
"""Value of MY_SERVICE_TOKEN: named like a secret, so scrubbed wherever it appears."""
PROVIDER_KEY = "sk-proj-Plantedkey0123456789abcdef"
SOURCE_KEY = "sk_live_PlantedStripeKey0123456789"
GITHUB_TOKEN = "ghp_PlantedGithubToken0123456789abcdefgh"
INPUT_PASSWORD = "hunter2-planted"
CUT_KEY = "sk-cut-Plantedkey0123456789abcdef"
"""In a 30,000-character output, across the place the bundle cuts it (20,000)."""
SECRETS = (ENV_SECRET, PROVIDER_KEY, SOURCE_KEY, GITHUB_TOKEN, INPUT_PASSWORD, CUT_KEY)

LEAKY = f'''
    import os

    from smithers import Sequence, Task, workflow

    STRIPE_KEY = "{SOURCE_KEY}"


    def fail():
        token = os.environ["MY_SERVICE_TOKEN"]
        raise ConnectionError(
            f"auth refused for {{token}} with {{os.environ['OPENAI_API_KEY']}} "
            "and {GITHUB_TOKEN}"
        )


    @workflow("leaky")
    def leaky(ctx):
        steps = [Task(f"step-{{i}}", output=dict, value={{"i": i}}) for i in range(40)]
        blob = {{"blob": "x " * 9995 + "{CUT_KEY}" + " y" * 5000}}
        return Sequence(
            *steps, Task("blob", output=dict, value=blob), Task("call-api", output=dict, run=fail)
        )
'''

ENV = {"MY_SERVICE_TOKEN": ENV_SECRET, "OPENAI_API_KEY": PROVIDER_KEY}


class Failed(NamedTuple):
    root: Path
    db: Path
    run_id: str
    smithers: Any


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory, smithers: Any) -> Failed:
    """(project folder, database, run id, `run_smithers`) of a failed run of ``leaky.py``."""
    root = tmp_path_factory.mktemp("bug")
    (root / "leaky.py").write_text(textwrap.dedent(LEAKY), encoding="utf-8")
    db = root / ".smithers" / "smithers.db"
    inp = json.dumps({"user": "ada", "password": INPUT_PASSWORD})
    proc = smithers(
        "up", "leaky.py", "--run-id", "leaky-1", "--input", inp, "--db", str(db),
        "--no-log", cwd=root, env=ENV,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    return Failed(root, db, "leaky-1", smithers)


def _bug(failed: Failed, *args: str, env: dict[str, str] | None = None) -> Any:
    root, db, run_id, smithers = failed
    return smithers("bug", "--run", run_id, *args, "--db", str(db), cwd=root, env=env)


def _bug_files(db: Path) -> set[Path]:
    return set((db.parent / "bugs").glob("*.json"))


def test_the_bundle_holds_what_a_maintainer_needs(failed: Failed) -> None:
    root, db, run_id, _ = failed
    proc = _bug(failed, "--title", "resume hangs", "--body", "I ran up twice", "--json", env=ENV)

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    path = Path(report["path"])
    assert path.parent == db.parent / "bugs"
    assert path.name.startswith(f"{run_id}-")
    assert path.suffix == ".json"
    assert report["posted"] is False
    assert report["endpoint"] is None
    bundle = json.loads(path.read_text(encoding="utf-8"))
    assert bundle["format"] == "smithers-bug"
    assert (bundle["title"], bundle["body"]) == ("resume hangs", "I ran up twice")
    assert bundle["smithersVersion"] == SMITHERS_VERSION
    assert bundle["python"].count(".") == 2
    assert bundle["platform"]
    run = bundle["run"]
    assert (run["runId"], run["status"], run["workflowName"]) == (run_id, "failed", "leaky")
    assert run["workflowPath"] == str(root / "leaky.py")
    assert run["error"]["name"] == "ConnectionError"
    assert [n["nodeId"] for n in run["failedNodes"]] == ["call-api"]
    assert run["failedNodes"][0]["error"]["line"] is not None
    assert run["input"]["user"] == "ada"
    assert '@workflow("leaky")' in bundle["workflow"]["source"]
    assert bundle["workflow"]["truncated"] is False
    # The last 80 events, in order, ending with the run's last one.
    seqs = [e["seq"] for e in bundle["events"]]
    assert bundle["eventsTotal"] > 80
    assert seqs == list(range(bundle["eventsTotal"] - 79, bundle["eventsTotal"] + 1))
    assert bundle["events"][-1]["type"] == "RunFailed"


def test_no_secret_reaches_the_file(failed: Failed) -> None:
    proc = _bug(failed, "--body", f"my token is {ENV_SECRET}", "--json", env=ENV)

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    text = Path(report["path"]).read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in text
    assert CUT_KEY[:8] not in text  # not even the part before the cut
    assert report["redactions"] >= len(SECRETS) - 1
    bundle = json.loads(text)
    assert "[REDACTED]" in bundle["run"]["error"]["message"]
    assert bundle["run"]["input"]["password"] == "[REDACTED]"
    assert 'STRIPE_KEY = "[REDACTED]"' in bundle["workflow"]["source"]
    assert bundle["body"] == "my token is [REDACTED]"
    blob = next(
        e for e in bundle["events"] if e["type"] == "NodeFinished" and e["nodeId"] == "blob"
    )
    assert blob["output"]["blob"].endswith(" chars]")
    assert len(blob["output"]["blob"]) < 20_100


def test_without_a_bug_url_nothing_is_sent(failed: Failed, bug_server: Any) -> None:
    proc = _bug(failed, env=ENV)

    assert proc.returncode == 0, proc.stderr
    assert "not posted (SMITHERS_BUG_URL is not set)" in proc.stdout
    assert "written to" in proc.stdout
    assert bug_server.requests == []


BUG_7 = "https://bugs.example/BUG-7"
BUG_8 = "https://bugs.example/BUG-8"


@pytest.mark.parametrize(
    ("body", "headers", "url", "bug_id"),
    [
        ({"id": "BUG-7", "url": BUG_7}, {}, BUG_7, "BUG-7"),  # the reply names the bug
        (None, {"Location": BUG_8}, BUG_8, None),  # only its Location header does
    ],
)
def test_with_a_bug_url_the_scrubbed_bundle_is_posted(
    failed: Failed,
    bug_server: Any,
    body: Any,
    headers: dict[str, str],
    url: str,
    bug_id: str | None,
) -> None:
    bug_server.reply(201, body, headers)
    proc = _bug(failed, "--json", env={**ENV, "SMITHERS_BUG_URL": bug_server.url})

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["posted"] is True
    assert (report["url"], report["bugId"]) == (url, bug_id)
    assert report["endpoint"] == bug_server.url
    [request] = bug_server.requests
    assert request["path"] == "/api/bugs"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == json.loads(Path(report["path"]).read_text(encoding="utf-8"))
    sent = json.dumps(request["body"])
    for secret in SECRETS:
        assert secret not in sent


def test_a_failed_post_keeps_the_file_and_exits_1(failed: Failed, bug_server: Any) -> None:
    bug_server.reply(500, {"error": "down"})
    proc = _bug(failed, env={**ENV, "SMITHERS_BUG_URL": bug_server.url})

    assert proc.returncode == 1
    assert "not posted" in proc.stderr
    assert "HTTP 500" in proc.stderr
    path = proc.stdout.split("written to ", 1)[1].splitlines()[0].strip()
    assert Path(path).is_file()
    assert len(bug_server.requests) == 1


def test_an_unreachable_endpoint_is_reported(failed: Failed) -> None:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _bug(failed, "--json", env={"SMITHERS_BUG_URL": f"http://127.0.0.1:{port}/bugs"})

    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["posted"] is False
    assert "cannot reach" in report["postError"]
    assert Path(report["path"]).is_file()


def test_a_bug_url_that_is_not_http_is_refused_before_anything_is_written(
    failed: Failed,
) -> None:
    before = _bug_files(failed[1])
    proc = _bug(failed, env={"SMITHERS_BUG_URL": "file:///etc/passwd"})

    assert proc.returncode == 4
    assert "Error [INVALID_INPUT]" in proc.stderr
    assert "SMITHERS_BUG_URL" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _bug_files(failed[1]) == before


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--run", "no-such-run"], "RUN_NOT_FOUND"),
        (["--run", "../etc"], "INVALID_INPUT"),
        ([], "INVALID_INPUT"),
    ],
)
def test_bad_runs_exit_4(failed: Failed, args: list[str], code: str) -> None:
    root, db, _, smithers = failed
    proc = smithers("bug", *args, "--db", str(db), cwd=root)

    assert proc.returncode == 4
    assert f"Error [{code}]" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_file_bug_is_the_api_the_autopsy_calls(failed: Failed) -> None:
    _, db, run_id, _ = failed

    async def main() -> BugReport:
        return await file_bug(run_id, title="from the autopsy", body="class smithers-bug", db=db,
                              environ=ENV)  # fmt: skip

    report = anyio.run(main)

    assert isinstance(report, BugReport)
    assert (report.run_id, report.posted, report.url) == (run_id, False, None)
    bundle = json.loads(Path(report.path).read_text(encoding="utf-8"))
    assert bundle["title"] == "from the autopsy"
    assert ENV_SECRET not in json.dumps(bundle)
