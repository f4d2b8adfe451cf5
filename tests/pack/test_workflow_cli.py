"""``smithers workflow list|path|run``: workflows by name, the project's copy first.

The pack's workflows run for real (``smithers workflow run`` in a process, in a git
repository) with their offline stand-in agents: no model API key is set.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from smithers.engine.pack import PACK_WORKFLOWS_DIR

SYSTEM_FLOW = '''
    """A stand-in system workflow, named like the autopsy."""
    from smithers.engine import Task, workflow


    @workflow("post-failure")
    def post_failure(ctx):
        return [Task("output", output=dict, value={"target": ctx.input["targetRunId"]})]
'''

PROJECT_FLOW = '''
    """Say hello: a project's own workflow."""
    from smithers.engine import Task, workflow


    @workflow("hello-world")
    def hello_world(ctx):
        return [Task("output", output=dict, value={"hello": ctx.input.get("name", "you")})]
'''


def _write_flow(project: Any, name: str, body: str) -> None:
    folder = project.root / ".smithers" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body), encoding="utf-8")


def _listed(project: Any, *args: str) -> dict[str, dict[str, Any]]:
    done = project.smithers("workflow", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    return {w["name"]: w for w in json.loads(done.stdout)}


def test_list_shows_the_pack_and_hides_system_workflows(project: Any) -> None:
    _write_flow(project, "post_failure.py", SYSTEM_FLOW)
    _write_flow(project, "hello_world.py", PROJECT_FLOW)

    shown = _listed(project)
    every = _listed(project, "--system")

    assert {"review", "research", "implement", "hello-world"} <= set(shown)
    assert "post-failure" not in shown
    assert every["post-failure"]["system"] is True
    assert every["post-failure"]["origin"] == "project"
    assert shown["hello-world"]["origin"] == "project"
    assert shown["hello-world"]["summary"] == "Say hello: a project's own workflow."
    assert shown["review"]["origin"] == "pack"
    assert shown["review"]["path"] == str(PACK_WORKFLOWS_DIR / "review.py")
    text = project.smithers("workflow", "list", "--system")
    assert text.returncode == 0
    line = next(x for x in text.stdout.splitlines() if x.startswith("post-failure"))
    assert "system" in line


def test_path_prefers_the_projects_copy(project: Any) -> None:
    before = project.smithers("workflow", "path", "review")
    assert before.stdout.strip() == str(PACK_WORKFLOWS_DIR / "review.py")

    assert project.smithers("init").returncode == 0
    after = project.smithers("workflow", "path", "review")
    from_below = project.smithers("workflow", "path", "review", cwd=project.root / ".smithers")

    copy = project.root / ".smithers" / "workflows" / "review.py"
    assert after.stdout.strip() == str(copy)
    assert from_below.stdout.strip() == str(copy)
    assert _listed(project)["review"]["overridesPack"] is True


@pytest.mark.parametrize("name", ["no-such-flow", "../review", "/etc/passwd"])
@pytest.mark.parametrize("verb", ["path", "run"])
def test_an_unknown_or_path_like_name_exits_4_with_the_list(
    project: Any, verb: str, name: str
) -> None:
    done = project.smithers("workflow", verb, name)

    assert done.returncode == 4
    assert "Error [INVALID_INPUT]" in done.stderr
    assert "Traceback" not in done.stderr
    if name == "no-such-flow":
        assert "review" in done.stderr  # the names there are
        assert "research" in done.stderr


def test_run_reviews_the_working_tree_diff(project: Any) -> None:
    (project.root / "app.py").write_text(
        'def greet(name):\n    breakpoint()\n    return f"Hello, {name}!"  # TODO polish\n',
        encoding="utf-8",
    )

    result = project.run_json("review", "--run-id", "rev-1")

    assert result["runId"] == "rev-1"
    assert result["status"] == "finished"
    verdict = result["outputs"]["output"]
    assert verdict["approved"] is False
    assert verdict["files"] == ["app.py"]
    found = {(c["line"], c["severity"], c["message"]) for c in verdict["comments"]}
    assert (2, "blocker", "debugger call") in found
    assert (3, "minor", "unfinished work (TODO/FIXME)") in found


def test_run_approves_a_clean_diff_given_as_input(project: Any) -> None:
    diff = "--- a/app.py\n+++ b/app.py\n@@ -1,3 +1,3 @@\n-x = 1\n+x = 2\n"

    result = project.run_json("review", "--input", json.dumps({"diff": diff}))

    assert result["status"] == "finished"
    assert result["outputs"]["output"]["approved"] is True
    assert result["outputs"]["diff"]["source"] == "given"


def test_run_answers_a_question_from_the_files(project: Any) -> None:
    question = {"question": "Where is greet defined?"}

    result = project.run_json("research", "--input", json.dumps(question))

    assert result["status"] == "finished"
    answer = result["outputs"]["output"]
    assert answer["citations"] == ["app.py:1"]
    assert answer["confidence"] in ("low", "medium", "high")
    assert "app.py" in answer["answer"]


def test_run_a_projects_own_workflow_and_a_system_one_by_name(project: Any) -> None:
    _write_flow(project, "hello_world.py", PROJECT_FLOW)
    _write_flow(project, "post_failure.py", SYSTEM_FLOW)

    hello = project.run_json("hello-world", "--input", '{"name": "Ada"}')
    autopsy = project.run_json("post-failure", "--input", '{"targetRunId": "run-1"}')

    assert hello["outputs"]["output"] == {"hello": "Ada"}
    assert autopsy["outputs"]["output"] == {"target": "run-1"}


def test_run_passes_ups_options_and_exit_codes_through(project: Any) -> None:
    bad_input = project.smithers(
        "workflow", "run", "review", "--input", '{"nope": 1}', "--db", str(project.db)
    )
    bad_option = project.smithers("workflow", "run", "review", "--no-such-option")

    assert bad_input.returncode == 4
    assert "Error [INVALID_INPUT]" in bad_input.stderr
    assert bad_option.returncode == 4
    assert "Error [INVALID_INPUT]" in bad_option.stderr
    assert "smithers up --help" in bad_option.stderr


DOUBLES = Path(__file__).resolve().parents[1] / "agents" / "doubles"
TICKET = Path(__file__).resolve().parents[2] / "examples" / "tickets" / "001-greeting.md"


def test_run_implements_a_ticket_in_a_review_loop(project: Any) -> None:
    """``claude`` is the double (tests/agents/doubles): the reviewer asks for a test once."""
    (project.root / "tickets").mkdir()
    shutil.copy(TICKET, project.root / "tickets")
    project.git("add", "-A")
    project.git("commit", "-q", "-m", "ticket")
    env = {"PATH": f"{DOUBLES}:{project.env['PATH']}", "CLAUDE_DOUBLE_SCENARIO": "ticket"}

    result = project.run_json(
        "implement", "--run-id", "t1", "--input", '{"ticket": "tickets/001-greeting.md"}', env=env
    )

    assert result["status"] == "finished", result["error"]
    assert result["outputs"]["output"] == {"branch": "smithers/001-greeting-t1", "rounds": 2}
    files = project.git("ls-tree", "--name-only", "-r", "smithers/001-greeting-t1").split()
    assert {"hello.py", "test_hello.py"} <= set(files)
    assert not (project.root / "hello.py").exists()  # the main checkout was not touched
