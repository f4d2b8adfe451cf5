"""The web page in headless Chromium: a finished run's timeline, scrubbed and forked.

A real ``smithers serve`` subprocess (with an auth token) on 127.0.0.1 and a free port,
driven by Playwright through Debian's Chromium (``/usr/bin/chromium``; Playwright's own
browsers are never downloaded). Screenshots go to the test's tmp dir and to
``/tmp/smithers-ui-screenshots/``. Skipped when Chromium or Playwright is missing,
except in CI (``CI=true``), where that fails.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path("/tmp/smithers-ui-screenshots")
TOKEN = "ui-token"

# Five tasks one after another, each in a frame of its own: frames 0 to 5.
FIVE = """
    import time
    import msgspec
    from smithers import Sequence, Task, workflow

    class N(msgspec.Struct):
        n: int

    def step(i):
        def run():
            time.sleep(0.05)
            return {"n": i}
        return run

    @workflow("five")
    def five(ctx):
        return Sequence(*(Task(f"step{i}", output=N, run=step(i)) for i in range(1, 6)))
"""


@pytest.fixture
def http_to() -> Iterator[Callable[..., httpx.Client]]:
    """Make API clients of a `Served` server (its token), closed after the test."""
    clients: list[httpx.Client] = []

    def make(served: Any) -> httpx.Client:
        client = httpx.Client(base_url=served.url, headers=served.headers, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _browser_or_skip() -> Any:
    """Return Playwright's ``sync_playwright``; skip (fail in CI) without it or Chromium."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing is None and not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the web page test needs a browser in CI: {missing}")
        pytest.skip(f"no headless browser here: {missing}")
    return sync_playwright


def _states(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Node id -> state of its newest iteration."""
    out: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: n["iteration"]):
        out[node["nodeId"]] = node["state"]
    return out


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    notice = page.locator("#notice.error")
    assert not notice.is_visible(), notice.inner_text()  # the page showed no error
    path = tmp_path / "screenshots" / name
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(exist_ok=True)
    copy = SHOTS / name
    shutil.copyfile(path, copy)
    print(f"screenshot: {path} (copy: {copy})")


def test_scrub_a_finished_run_to_frame_3_and_fork_it(
    serve: Callable[..., Any], root: Path, tmp_path: Path, http_to: Callable[..., httpx.Client]
) -> None:
    sync_playwright = _browser_or_skip()
    (root / "five.py").write_text(textwrap.dedent(FIVE), "utf-8")
    served = serve(token=TOKEN)
    http = http_to(served)
    run_id = http.post("/v1/runs", json={"workflowPath": "five.py"}).json()["runId"]
    deadline = time.monotonic() + 30
    while (run := http.get(f"/v1/runs/{run_id}").json())["status"] != "finished":
        assert time.monotonic() < deadline, run["status"]
        time.sleep(0.1)
    assert len(run["frames"]) >= 4, run["frames"]
    at_3 = http.get(f"/v1/runs/{run_id}/state", params={"frame": 3}).json()
    expected = _states(at_3["state"]["nodes"])
    assert expected != _states(run["nodes"])  # frame 3 is not the end: the check can fail

    dialogs: list[tuple[str, str]] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)

        def on_dialog(dialog: Any) -> None:
            dialogs.append((dialog.type, dialog.message))
            dialog.accept(TOKEN if dialog.type == "prompt" else None)

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda e: errors.append(str(e)))

        # The run page: asks for the token once, then shows the finished run live.
        page.goto(f"{served.url}/#/runs/{run_id}")
        status = page.locator("#run-status")
        status.wait_for()
        page.wait_for_function(
            "() => document.querySelector('#run-status').dataset.status === 'finished'"
        )
        last = run["frames"][-1]["frameNo"]
        page.wait_for_function(f"() => document.querySelector('#tree').dataset.frame === '{last}'")
        assert [kind for kind, _ in dialogs] == ["prompt"]
        _shot(page, tmp_path, "run-live.png")

        # Scrub to frame 3 with the keyboard: the tree shows frame 3's states and outputs.
        page.locator("#scrub").focus()
        page.keyboard.press("Home")
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "() => document.querySelector('#tree').dataset.frame === '3'"
            " && document.querySelector('#tree').dataset.live === 'false'"
        )
        shown = dict(
            page.locator("#tree [data-node-id]").evaluate_all(
                "els => els.map(e => [e.dataset.nodeId, e.dataset.state])"
            )
        )
        assert {k: shown.get(k) for k in expected} == expected
        assert page.locator("#frame-label").get_attribute("data-frame") == "3"
        step1 = page.locator('#tree [data-node-id="step1"] .output')
        assert step1.inner_text() == '{"n":1}'
        page.locator('#tree [data-node-id="step1"] button').click()
        page.locator("#node-detail h3", has_text="At frame 3").wait_for()
        _shot(page, tmp_path, "timeline-frame-3.png")

        # Fork from frame 3 (confirm accepted): the page moves to the fork, which finishes.
        page.locator("#fork").click()
        page.wait_for_function(
            f"() => location.hash.startsWith('#/runs/') && !location.hash.endsWith('{run_id}')"
        )
        fork_id = page.evaluate("() => decodeURIComponent(location.hash.slice('#/runs/'.length))")
        assert dialogs[-1][0] == "confirm"
        assert "frame 3" in dialogs[-1][1]
        page.wait_for_function(
            "() => document.querySelector('#run-status').dataset.status === 'finished'",
            timeout=30_000,
        )
        _shot(page, tmp_path, "fork-finished.png")
        fork = http.get(f"/v1/runs/{fork_id}").json()
        assert (fork["status"], fork["parentRunId"], fork["parentFrameNo"]) == (
            "finished",
            run_id,
            3,
        )

        # The parent's timeline lists the fork as a branch; the runs list shows both runs.
        page.goto(f"{served.url}/#/runs/{run_id}")
        page.locator(f'#branches [data-run-id="{fork_id}"]').wait_for()
        page.locator("#scrub").focus()
        page.keyboard.press("Home")
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.querySelector('#tree').dataset.frame === '3'")
        page.locator('#tree [data-node-id="step3"] button').click()
        page.locator("#node-detail h3", has_text="At frame 3").wait_for()
        _shot(page, tmp_path, "timeline.png")  # the README's picture (docs/web-timeline.png)
        page.goto(f"{served.url}/#/")
        page.locator(f'tr[data-run-id="{fork_id}"]').wait_for()
        page.locator(f'tr[data-run-id="{run_id}"]').wait_for()
        _shot(page, tmp_path, "runs.png")
        browser.close()
    assert [kind for kind, _ in dialogs].count("prompt") == 1  # the token is asked once
    assert errors == []


# A task that fails with markup in its message, after one whose output holds markup.
HOSTILE = """
    import msgspec
    from smithers import Sequence, Task, workflow

    class Out(msgspec.Struct):
        html: str

    def boom():
        raise ValueError('<img src=x onerror="window.pwned=1"> failed')

    @workflow("hostile")
    def hostile(ctx):
        return Sequence(
            Task("first", output=Out, value={"html": "<script>window.pwned=2</script>"}),
            Task("second", output=Out, run=boom),
        )
"""


def _wait_status(http: httpx.Client, run_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (run := http.get(f"/v1/runs/{run_id}").json())["status"] != status:
        assert time.monotonic() < deadline, run["status"]
        time.sleep(0.1)
    return run


def test_api_strings_are_shown_as_text_and_runs_filter_by_status(
    serve: Callable[..., Any], root: Path, tmp_path: Path, http_to: Callable[..., httpx.Client]
) -> None:
    sync_playwright = _browser_or_skip()
    (root / "hostile.py").write_text(textwrap.dedent(HOSTILE), "utf-8")
    served = serve()  # no token: the page never asks for one
    http = http_to(served)
    bad = http.post("/v1/runs", json={"workflowPath": "hostile.py"}).json()["runId"]
    good = http.post("/v1/runs", json={"workflowPath": "count.py"}).json()["runId"]
    _wait_status(http, bad, "failed")
    _wait_status(http, good, "finished")

    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        page.on("dialog", lambda d: (dialogs.append(d.type), d.dismiss()))
        page.goto(f"{served.url}/#/runs/{bad}")
        page.wait_for_function(
            "() => document.querySelector('#run-status').dataset.status === 'failed'"
        )
        page.locator('#tree [data-node-id="second"] button').click()
        stack = page.locator("#node-detail .error-box").first
        stack.wait_for()
        assert '<img src=x onerror="window.pwned=1"> failed' in stack.inner_text()
        output = page.locator('#tree [data-node-id="first"] .output').inner_text()
        assert "<script>window.pwned=2</script>" in output
        assert page.locator("#app img, #app script").count() == 0
        assert page.evaluate("() => window.pwned") is None
        _shot(page, tmp_path, "failed-node.png")

        # The runs list: the status filters keep only the runs in that status.
        page.goto(f"{served.url}/#/")
        page.locator(f'tr[data-run-id="{good}"]').wait_for()
        page.locator('button.filter[data-status="failed"]').click()
        page.locator(f'tr[data-run-id="{good}"]').wait_for(state="detached")
        assert page.locator("tr[data-run-id]").evaluate_all(
            "rows => rows.map(r => r.dataset.runId)"
        ) == [bad]
        browser.close()
    assert dialogs == []


def test_the_page_and_its_files_are_served_without_the_token(make_api: Any) -> None:
    api = make_api(auth_token="s3cret")
    page = api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script type="module" src="/ui/app.js">' in page.text
    for name in ("app.js", "api.js", "dom.js", "run.js", "runs.js", "tree.js", "app.css"):
        r = api.get(f"/ui/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].split(";")[0] in ("text/javascript", "text/css")
    # The data is not: the API still wants the token.
    assert api.get("/v1/runs").json()["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("name", ["nope.js", "index.html", "_ui.py", ".js", "app.js.map"])
def test_only_the_page_s_own_files_are_served(make_api: Any, name: str) -> None:
    api = make_api(auth_token="s3cret")
    r = api.get(f"/ui/{name}")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/ui/x/app.js", "/ui/..%2F_ui.py", "/ui/%2E%2E/errors.py"])
def test_a_path_below_ui_needs_the_token_and_is_not_served(make_api: Any, path: str) -> None:
    api = make_api(auth_token="s3cret")
    assert api.get(path).status_code == 401
    r = api.get(path, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 404, r.text


def test_a_run_page_follows_a_live_run_and_approves_a_gate(
    serve: Callable[..., Any], tmp_path: Path, http_to: Callable[..., httpx.Client]
) -> None:
    sync_playwright = _browser_or_skip()
    served = serve(token=TOKEN)
    http = http_to(served)
    waits = http.post("/v1/runs", json={"workflowPath": "waits.py"}).json()["runId"]
    deploy = http.post("/v1/runs", json={"workflowPath": "deploy.py"}).json()["runId"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        confirms: list[str] = []

        def on_dialog(dialog: Any) -> None:
            confirms.append(dialog.type)
            dialog.accept(TOKEN if dialog.type == "prompt" else None)

        page.on("dialog", on_dialog)

        # A run waiting for an event: the page shows it waiting, refuses a bad signal
        # with the API's error, and follows the run live when the event comes over HTTP.
        page.goto(f"{served.url}/#/runs/{waits}")
        page.wait_for_function(
            "() => document.querySelector('#run-status').dataset.status === 'waiting-event'"
        )
        assert page.locator('#tree [data-node-id="after"]').get_attribute("data-state") != (
            "finished"
        )
        page.locator("#signal input").nth(0).fill("ci.done")
        page.locator("#signal input").nth(1).fill('{"n": "x"}')
        page.locator("#signal button").click()
        page.locator("#notice.error", has_text="INVALID_INPUT").wait_for()
        r = http.post(f"/v1/runs/{waits}/signals/ci.done", json={"data": {"n": 7}})
        assert r.status_code == 200, r.text
        page.wait_for_function(
            "() => document.querySelector('#run-status').dataset.status === 'finished'"
            " && document.querySelector('#tree [data-node-id=\"after\"]').dataset.state"
            " === 'finished'"
        )
        assert page.locator('#tree [data-node-id="ci"] .output').inner_text() == '{"n":7}'
        # The status comes from a state fetch that may beat the stream's last event to the
        # page; the event list catches up with RunFinished (newest first).
        page.wait_for_function(
            "() => (document.querySelector('#events li')?.textContent ?? '')"
            ".endsWith('RunFinished')"
        )

        # A run waiting for a decision: open the gate, approve it, the run goes on.
        page.goto(f"{served.url}/#/runs/{deploy}")
        page.wait_for_function(
            "() => document.querySelector('#run-status').dataset.status === 'waiting-approval'"
        )
        page.locator('#tree [data-node-id="gate"] button').click()
        page.locator("#node-detail .approval", has_text="Deploy?").wait_for()
        _shot(page, tmp_path, "approval.png")
        page.locator("#approve").click()
        page.wait_for_function(
            "() => document.querySelector('#run-status').dataset.status === 'finished'"
        )
        assert page.locator('#tree [data-node-id="deploy"]').get_attribute("data-state") == (
            "finished"
        )
        browser.close()
    assert confirms == ["prompt"]  # approving asks no confirmation; the token is asked once
    ops = http.get("/v1/audit", params={"runId": deploy, "type": "ApprovalGranted"}).json()
    assert [op["actor"]["interface"] for op in ops["operations"]] == ["http"]


def test_rewind_resume_and_retry_from_the_page(
    serve: Callable[..., Any], root: Path, tmp_path: Path, http_to: Callable[..., httpx.Client]
) -> None:
    sync_playwright = _browser_or_skip()
    (root / "five.py").write_text(textwrap.dedent(FIVE), "utf-8")
    served = serve()
    http = http_to(served)
    five = http.post("/v1/runs", json={"workflowPath": "five.py"}).json()["runId"]
    bad = http.post("/v1/runs", json={"workflowPath": "bad.py"}).json()["runId"]
    _wait_status(http, five, "finished")
    _wait_status(http, bad, "failed")
    confirms: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)

        def on_dialog(dialog: Any) -> None:
            confirms.append(dialog.message)
            dialog.accept()

        page.on("dialog", on_dialog)
        status = "() => document.querySelector('#run-status').dataset.status === '{}'"

        # Rewind the finished run to frame 2 (confirmed), then resume it: it ends again.
        page.goto(f"{served.url}/#/runs/{five}")
        page.wait_for_function(status.format("finished"))
        page.locator("#scrub").focus()
        page.keyboard.press("Home")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.querySelector('#tree').dataset.frame === '2'")
        page.locator("#rewind").click()
        page.wait_for_function(status.format("waiting-resume"))
        assert "frame 2" in confirms[-1]
        page.locator("#resume").click()
        page.wait_for_function(status.format("finished"))
        run = http.get(f"/v1/runs/{five}").json()
        assert (run["status"], run["activation"]) == ("finished", 2)

        # Retry the failed task (confirmed): a second attempt, failing the same way.
        page.goto(f"{served.url}/#/runs/{bad}")
        page.wait_for_function(status.format("failed"))
        page.locator('#tree [data-node-id="second"] button').click()
        page.locator("#node-detail .attempts tbody tr").first.wait_for()
        assert page.locator("#node-detail .attempts tbody tr").count() == 1
        page.locator("#retry-task").click()
        page.locator("#node-detail .attempts tbody tr").nth(1).wait_for()
        assert "second" in confirms[-1]
        assert "boom" in page.locator("#node-detail .attempts tbody tr").nth(1).inner_text()
        browser.close()
    assert len(confirms) == 2
