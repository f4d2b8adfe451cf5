"""The offline classifier's rules on hand-made evidence (pure: no database, no process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from smithers.engine.autopsy import (
    AttemptFact,
    ErrorFact,
    Evidence,
    FailedNode,
    classify,
    environment_signal,
)


def _evidence(error: ErrorFact, *attempts: AttemptFact, path: str = "/p/flow.py") -> Evidence:
    node = FailedNode(node_id="t", iteration=0, attempts=1, seq=7, error=error, frame_before=1)
    failed = AttemptFact(seq=7, node_id="t", iteration=0, attempt=1, outcome="failed", error=error)
    return Evidence(
        target_run_id="r1",
        status="failed",
        workflow_path=path,
        failed=(node,),
        attempts=(*attempts, failed),
        db_path="/d/smithers.db",
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ErrorFact(name="OSError", message="[Errno 28] No space left on device"), "disk-full"),
        (
            ErrorFact(name="PermissionError", message="[Errno 13] Permission denied: '/x'"),
            "permission",
        ),
        (ErrorFact(name="OperationalError", message="database is locked"), "db-locked"),
        (ErrorFact(name="OSError", message="[Errno 101] Network is unreachable"), "network"),
        (
            ErrorFact(
                name="SmithersError", message="claude: not found", code="PROCESS_SPAWN_FAILED"
            ),
            "missing-binary",
        ),
        (
            ErrorFact(
                name="RuntimeError", message="environment variable OPENAI_API_KEY is not set"
            ),
            "missing-env",
        ),
        (ErrorFact(name="RuntimeError", message="Invalid API key provided"), "auth"),
        (
            ErrorFact(
                name="RuntimeError",
                message="wrapped",
                cause=ErrorFact(name="OSError", message="No space left on device"),
            ),
            "disk-full",
        ),
    ],
)
def test_environment_signals(error: ErrorFact, kind: str) -> None:
    signal = environment_signal(error)
    assert signal is not None
    assert signal.kind == kind
    verdict = classify(_evidence(error))
    assert verdict.failure_class == "environment"
    assert verdict.suggestion == "fix-environment"
    assert verdict.commands[0] == "smithers retry-task r1 --node t --db /d/smithers.db"


def test_no_environment_signal_in_a_plain_bug() -> None:
    assert environment_signal(ErrorFact(name="ValueError", message="bad literal")) is None


def test_failed_then_passed_elsewhere_is_a_flake() -> None:
    error = ErrorFact(name="RuntimeError", message="upstream said 502", file="/p/flow.py", line=3)
    earlier = (
        AttemptFact(seq=3, node_id="t", iteration=1, attempt=1, outcome="failed", error=error),
        AttemptFact(seq=5, node_id="t", iteration=1, attempt=2, outcome="finished"),
    )
    verdict = classify(_evidence(error, *earlier))
    assert verdict.failure_class == "agent-flake"
    assert any(line.startswith("seq 3 then 5:") for line in verdict.evidence)


def test_rate_limit_code_is_a_flake_with_high_confidence() -> None:
    error = ErrorFact(name="AgentError", message="429", code="AGENT_RATE_LIMITED")
    verdict = classify(_evidence(error))
    assert (verdict.failure_class, verdict.confidence) == ("agent-flake", "high")


def test_non_retryable_workflow_code_is_a_workflow_bug() -> None:
    error = ErrorFact(name="SmithersError", message="bad", code="INVALID_INPUT", retryable=False)
    verdict = classify(_evidence(error))
    assert verdict.failure_class == "workflow-bug"
    assert verdict.commands[0].startswith("smithers fork r1 --frame 0 --input @fixed-input.json")


def test_not_failed_is_unknown() -> None:
    ev = Evidence(target_run_id="r1", status="finished")
    verdict = classify(ev)
    assert verdict.failure_class == "unknown"
    assert verdict.commands == ("smithers why r1",)


def test_builder_error_is_a_workflow_bug_fixed_by_a_fresh_run() -> None:
    error = ErrorFact(name="KeyError", message="'x'", file="/p/flow.py", line=9, stack="...")
    ev = Evidence(
        target_run_id="r1",
        status="failed",
        workflow_path="/p/flow.py",
        run_error=error,
        run_error_seq=4,
        db_path="/d/smithers.db",
    )
    verdict = classify(ev)
    assert verdict.failure_class == "workflow-bug"
    assert verdict.evidence[0] == "seq 4: the run failed outside any task: KeyError: 'x'"
    assert verdict.commands[0] == "smithers up /p/flow.py --db /d/smithers.db"
    assert verdict.suggestion_detail == "Fix the workflow at /p/flow.py:9, then start a fresh run."


def test_engine_error_without_user_frames_is_a_smithers_bug() -> None:
    error = ErrorFact(name="AttributeError", message="'NoneType' object has no attribute 'seq'")
    ev = Evidence(target_run_id="r1", status="failed", run_error=error, run_error_seq=4)
    verdict = classify(ev, autopsy_run_id="post-failure-x")
    assert verdict.failure_class == "smithers-bug"
    assert verdict.commands == (
        "smithers approve post-failure-x --node approve-bug-report",
        "smithers bug --run r1",
        "smithers inspect r1",
    )


def test_a_traceback_into_smithers_code_is_a_smithers_bug_with_high_confidence() -> None:
    import smithers.engine

    inside = str(Path(smithers.engine.__file__).parent / "activation" / "_loop.py")
    error = ErrorFact(
        name="TypeError",
        message="unsupported operand",
        file=inside,
        line=3,
        stack=f'Traceback (most recent call last):\n  File "{inside}", line 3, in f\n',
    )
    verdict = classify(_evidence(error))
    assert (verdict.failure_class, verdict.confidence) == ("smithers-bug", "high")


def test_a_file_beside_smithers_code_is_not_smithers_code() -> None:
    import smithers.engine

    # In a checkout, examples/ sits beside engine/: user code, not smithers'.
    beside = str(Path(smithers.engine.__file__).parents[1] / "examples" / "helpers.py")
    error = ErrorFact(name="TypeError", message="bad", file=beside, line=3, stack=beside)
    verdict = classify(_evidence(error))
    assert verdict.failure_class == "workflow-bug"
