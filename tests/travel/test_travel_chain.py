"""The hash chain across machines and retention: bundles carry it, imports re-chain the
rows to the same hashes, an edited bundle is refused, a pruned run still verifies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio
from smithers.eventstore import SQLiteEventStore

if TYPE_CHECKING:
    from pathlib import Path


def hashes(machine: Any, run_id: str) -> list[str]:
    async def read() -> list[str]:
        async with await SQLiteEventStore.open(machine.db, create=False) as store:
            return [r.hash.hex() for r in await store.read_chained(run_id)]

    return anyio.run(read)


def test_an_imported_run_has_the_exported_hashes_and_verifies(
    a: Any, b: Any, forked: str, finished: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "fork.smithers.jsonl"
    a.json("export", forked, "-o", str(bundle))
    rows = [json.loads(line) for line in bundle.read_text().splitlines()[1:]]
    assert all(len(r["hash"]) == 64 for r in rows)
    b.json("import", str(bundle))
    # The parent travels up to the fork point: its rows there, and all of the fork's,
    # have the hashes they had on machine A.
    for run_id in (forked, finished):
        imported = hashes(b, run_id)
        assert imported
        assert imported == hashes(a, run_id)[: len(imported)]
    for run_id in (forked, finished):
        check = b.json("verify", run_id, "--log-only")
        assert check["chain"]["status"] == "ok", check
    # The fork still chains from its parent's row at the fork point after the trip.
    assert b.json("verify", forked, "--log-only")["chain"]["parentRunId"] == finished


def test_a_bundle_edited_after_export_is_refused(
    a: Any, b: Any, finished: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "run.smithers.jsonl"
    a.json("export", finished, "-o", str(bundle))
    lines = bundle.read_text().splitlines()
    row = json.loads(lines[3])
    payload = json.loads(row["payload"])
    payload["timestampMs"] += 1  # a plausible edit: still a valid event
    row["payload"] = json.dumps(payload, separators=(",", ":"))
    lines[3] = json.dumps(row)
    bundle.write_text("\n".join(lines) + "\n")
    result = b("import", str(bundle))
    assert result.exit_code == 4
    assert f"seq {row['seq']}: its bytes do not match its chain hash" in result.output
    assert b("ps", "--json").stdout.strip() in ("[]", "")


def test_gc_audit_rows_are_chained_and_a_pruned_run_verifies(a: Any, finished: str) -> None:
    a.json("gc", "--finished-before", "1ms", "--keep-audit", "--by", "ops")
    check = a.json("verify", finished, "--log-only")
    assert check["chain"]["status"] == "collected"
    assert a("verify", finished, "--log-only").exit_code == 0
    audit = a.json("verify", "_audit", "--log-only")
    assert audit["chain"]["status"] == "ok"
