"""Build, ask a person, deploy a canary, let it soak, roll out: a run that waits.

Run it::

    smithers up examples/deploy_with_approval.py
    # ... build finished; the run parks, exit code 3, and prints:
    #   smithers approve <run-id> --node approve-deploy
    smithers approve <run-id> --node approve-deploy --note "canary plan looks fine"
    smithers inspect <run-id>        # canary, soak timer, rollout: finished

The run parks at the approval: no process stays behind while it waits, for minutes or
for weeks. ``smithers approve`` records the decision (who, when, the note) and resumes
the run in the background; ``smithers deny`` stops it (``APPROVAL_DENIED``). Between the
canary and the full rollout a durable `Timer` lets the canary soak: its fire time is in
the log, so a crash or restart never resets it, and a soak longer than a minute parks
the run too (``waiting-timer``) until ``smithers supervise`` wakes it.

Nodes:

- ``build`` (compute): "builds" the release: the version and a digest of it.
- ``approve-deploy`` (`Approval`): asks "Deploy <version>?" with the digest as the
  summary; its output is ``{approved, note, decidedBy, decidedAt}``.
- ``canary`` (compute): writes ``canary.json`` into `target` (a stand-in for deploying to
  a few hosts), with the build's digest.
- ``soak`` (`Timer`): waits `soak` (default ``"5s"``) before the rollout.
- ``rollout`` (compute): writes ``live.json`` into `target`.
- ``output`` (static): ``{version, digest, approvedBy}``.

Input (all optional): ``version`` (default ``"1.0.0"``), ``target`` (directory the
stand-in deploys write to, default ``.smithers/deploy-demo``), ``soak`` (a duration such
as ``"0s"``, ``"30s"``, ``"2h"``).
"""

import hashlib
import json
from pathlib import Path

import msgspec

from smithers import Approval, ApprovalDecision, Sequence, Task, Timer, WorkflowContext, workflow


class DeployInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    version: str = "1.0.0"
    target: str = ".smithers/deploy-demo"
    soak: str = "5s"


class Build(msgspec.Struct):
    version: str
    digest: str


class Deployed(msgspec.Struct):
    stage: str
    path: str


class Output(msgspec.Struct, rename="camel"):
    version: str
    digest: str
    approved_by: str | None


def build(version: str) -> Build:
    """Stand-in for a real build: the release's version and a digest of it."""
    return Build(version=version, digest=hashlib.sha256(version.encode()).hexdigest()[:12])


def deploy(target: str, stage: str, release: Build) -> Deployed:
    """Stand-in for a deploy: record the release under `target` as `<stage>.json`."""
    path = Path(target) / f"{stage}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": release.version, "digest": release.digest}) + "\n")
    return Deployed(stage=stage, path=str(path))


@workflow(name="deploy-with-approval", input=DeployInput)
def deploy_with_approval(ctx: WorkflowContext) -> Sequence:
    params: DeployInput = ctx.input
    release = ctx.output_maybe(Build, "build")
    decision = ctx.output_maybe(ApprovalDecision, "approve-deploy")
    first = Task("build", output=Build, run=lambda: build(params.version))
    if release is None:
        return Sequence(first)  # the rest is mounted once the build exists
    return Sequence(
        first,
        Approval(
            "approve-deploy",
            request={
                "title": f"Deploy {release.version}?",
                "summary": f"build digest {release.digest}; canary first, then a "
                f"{params.soak} soak before the full rollout",
                "metadata": {"version": release.version, "digest": release.digest},
            },
        ),
        Task("canary", output=Deployed, run=lambda: deploy(params.target, "canary", release)),
        Timer("soak", duration=params.soak),
        Task("rollout", output=Deployed, run=lambda: deploy(params.target, "live", release)),
        decision
        and Task(
            "output",
            output=Output,
            value=Output(
                version=release.version, digest=release.digest, approved_by=decision.decided_by
            ),
        ),
    )
