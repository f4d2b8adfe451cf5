"""Frames carry the rendered tree: keyframes and JSON-path deltas (engine/_frames.py).

Unit tests of the path dialect, `tree_delta`/`apply_delta` and the keyframe policy;
Hypothesis properties on random trees; and end to end, for generated workflows, the
tree rebuilt from the log at every frame equals the tree the engine rendered then.
"""

from __future__ import annotations

import contextlib
import copy
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smithers.engine import tree_at
from smithers.engine.activation import _loop
from smithers.engine.activation._frames import (
    KEYFRAME_INTERVAL,
    FrameEncoder,
    apply_delta,
    canonical_json,
    decode_delta,
    encode_delta,
    format_path,
    parse_path,
    tree_delta,
    tree_hash,
)
from smithers.engine.activation._render import compile_tree
from smithers.eventstore import MemoryEventStore, decode_event
from smithers.eventstore.events import NULL_RAW, FrameCommitted

from smithers import Branch, Parallel, Sequence, Task, run_workflow, workflow

if TYPE_CHECKING:
    from collections.abc import Iterator

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def same_json(a: Any, b: Any) -> bool:
    """JSON equality (``true`` is not ``1``): canonical encodings are equal."""
    return canonical_json(a) == canonical_json(b)


def task(node_id: str, **extra: Any) -> dict[str, Any]:
    return {"tag": "task", "id": node_id, "kind": "static", "output": "dict", **extra}


def tree(*children: Any) -> dict[str, Any]:
    return {"tag": "workflow", "children": [{"tag": "sequence", "children": list(children)}]}


# ---------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        ([], "$"),
        (["children", 3, "label"], "$.children[3].label"),
        (["dependsOn", 0], "$.dependsOn[0]"),
        (["odd key"], '$["odd key"]'),
        (["a.b", "x[0]", "9lives", 'q"uote', "é"], '$["a.b"]["x[0]"]["9lives"]["q\\"uote"]["é"]'),
        (["_ok", "", "children"], '$._ok[""].children'),
    ],
)
def test_paths_format_and_parse_back(parts: list[Any], text: str) -> None:
    assert format_path(parts) == text
    assert parse_path(text) == parts


@pytest.mark.parametrize(
    "bad", ["", "children", "$.", "$[", "$[x]", "$[-1]", '$["open', "$.a[1", "$..a", "$ a"]
)
def test_malformed_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"path|start"):
        parse_path(bad)


@given(st.lists(st.one_of(st.text(max_size=6), st.integers(0, 10**6)), max_size=6))
@SETTINGS
def test_every_path_round_trips(parts: list[Any]) -> None:
    assert parse_path(format_path(parts)) == parts


# ---------------------------------------------------------------------------- deltas


def test_an_unchanged_tree_is_the_empty_delta() -> None:
    t = tree(task("a"), task("b"))
    assert tree_delta(t, copy.deepcopy(t)) == []


def test_mounting_a_task_is_one_insert() -> None:
    old, new = tree(task("a"), task("c")), tree(task("a"), task("b"), task("c"))
    ops = tree_delta(old, new)
    assert ops == [{"op": "insert", "path": "$.children[0].children[1]", "value": task("b")}]
    assert apply_delta(copy.deepcopy(old), ops) == new


def test_unmounting_a_task_is_one_remove() -> None:
    old, new = tree(task("a"), task("b"), task("c")), tree(task("a"), task("c"))
    assert tree_delta(old, new) == [{"op": "remove", "path": "$.children[0].children[1]"}]


def test_a_changed_field_is_one_set_and_a_dropped_one_a_remove() -> None:
    old = tree(task("a", label="A", skipIf=True))
    new = tree(task("a", label="Alpha"))
    ops = tree_delta(old, new)
    assert sorted(ops, key=lambda op: op["path"]) == [
        {"op": "set", "path": "$.children[0].children[0].label", "value": "Alpha"},
        {"op": "remove", "path": "$.children[0].children[0].skipIf"},
    ]
    assert apply_delta(copy.deepcopy(old), ops) == new


def test_tasks_moved_among_others_are_matched_by_id() -> None:
    old = tree(*(task(f"t{i}") for i in range(8)))
    new = tree(*(task(f"t{i}") for i in (0, 1, 9, 2, 3, 5, 6, 7, 8)))
    ops = tree_delta(old, new)
    assert len(ops) == 3  # insert t9, remove t4, insert t8
    assert apply_delta(copy.deepcopy(old), ops) == new


@pytest.mark.parametrize(("old", "new"), [(True, 1), (1, 1.0), (0.0, -0.0), ([1], [True])])
def test_json_types_are_told_apart(old: Any, new: Any) -> None:
    ops = tree_delta({"v": old}, {"v": new})
    assert ops != []
    assert same_json(apply_delta({"v": old}, ops), {"v": new})


def test_replacing_the_root() -> None:
    assert apply_delta([1, 2], [{"op": "set", "path": "$", "value": {"a": 1}}]) == {"a": 1}
    assert tree_delta([1], {"a": 1}) == [{"op": "set", "path": "$", "value": {"a": 1}}]


@pytest.mark.parametrize(
    "op",
    [
        {"op": "move", "path": "$.a"},
        {"op": "set"},
        {"op": "remove", "path": "$"},
        {"op": "insert", "path": "$"},
        {"op": "remove", "path": "$.missing"},
        {"op": "set", "path": "$.list[5]", "value": 1},
        {"op": "insert", "path": "$.list[3]", "value": 1},
        {"op": "insert", "path": "$.a", "value": 1},
        {"op": "set", "path": "$.list.x", "value": 1},
        {"op": "set", "path": "$.nope.x", "value": 1},
        {"op": "remove", "path": "$.list[2]"},
        "not an op",
    ],
)
def test_an_op_that_does_not_fit_the_tree_is_refused(op: Any) -> None:
    with pytest.raises(ValueError, match=r"cannot|malformed|no "):
        apply_delta({"a": 1, "list": [1, 2]}, [op])


def test_deltas_encode_and_decode() -> None:
    ops = tree_delta(tree(task("a")), tree(task("a"), task("b")))
    assert decode_delta(encode_delta(ops)) == ops
    assert encode_delta([]) == b"[]"
    for bad in (b"{", b"{}", b"[1]"):
        with pytest.raises(ValueError, match="delta"):
            decode_delta(bad)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "a", "task", "b c", "é"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.sampled_from(["a", "b", "id", "tag", "x y", "9"]), inner, max_size=4),
    ),
    max_leaves=25,
)


@st.composite
def node_trees(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """Trees shaped like the engine's: groups of tasks with ids, a few optional fields."""
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        node = task(f"t{draw(st.integers(0, 12))}")
        if draw(st.booleans()):
            node["label"] = draw(st.sampled_from(["A", "B"]))
        if draw(st.booleans()):
            node["dependsOn"] = draw(st.lists(st.sampled_from(["t1", "t2", "t3"]), max_size=2))
        return node
    tag = draw(st.sampled_from(["sequence", "parallel", "branch"]))
    kids = draw(st.lists(node_trees(depth + 1), max_size=5))
    node = {"tag": tag, "children": kids}
    if tag == "branch":
        node["if"] = draw(st.booleans())
    return node


trees = st.one_of(json_values, node_trees())


@given(trees, trees)
@SETTINGS
def test_applying_the_delta_of_two_trees_gives_the_second(a: Any, b: Any) -> None:
    ops = tree_delta(a, b)
    assert msgspec.json.decode(encode_delta(ops)) == ops  # the ops are plain JSON
    result = apply_delta(copy.deepcopy(a), decode_delta(encode_delta(ops)))
    assert same_json(result, b)


@given(trees)
@SETTINGS
def test_the_delta_of_a_tree_and_itself_is_empty(a: Any) -> None:
    assert tree_delta(a, copy.deepcopy(a)) == []


@given(node_trees())
@SETTINGS
def test_mounting_one_task_costs_one_op(a: dict[str, Any]) -> None:
    b = copy.deepcopy(a)
    b["children"] = [*b.get("children", []), task("new-one")]
    ops = tree_delta(a, b)
    assert len(ops) == 1
    assert same_json(apply_delta(copy.deepcopy(a), ops), b)


# ---------------------------------------------------------------------------- keyframe policy


def _encode(enc: FrameEncoder, frame_no: int, t: dict[str, Any], seq: int) -> str:
    previous = enc._seq  # the encoder's last frame is still the run's latest
    key, delta = enc.encode(frame_no, t, tree_hash(t), previous_seq=previous)
    enc.committed(seq)
    assert (key is None) != (delta is None)
    if key is not None:
        assert tree_hash(msgspec.json.decode(key)) == tree_hash(t)
        assert bytes(key) == canonical_json(t)
        return "key"
    return "[]" if bytes(delta) == b"[]" else "delta"  # type: ignore[arg-type]


def test_the_first_frame_of_an_encoder_is_a_keyframe_then_deltas() -> None:
    enc = FrameEncoder()
    t0, t1 = tree(task("a")), tree(task("a"), task("b"))
    assert _encode(enc, 7, t0, 10) == "key"
    assert _encode(enc, 8, t0, 12) == "[]"
    assert _encode(enc, 9, t1, 14) == "delta"


def test_a_multiple_of_the_interval_is_a_keyframe_only_if_the_tree_changed() -> None:
    enc = FrameEncoder()
    static = tree(task("a"))
    kinds = [_encode(enc, n, static, n + 1) for n in range(0, 3 * KEYFRAME_INTERVAL + 1)]
    assert kinds[0] == "key"
    assert set(kinds[1:]) == {"[]"}  # a static tree is never copied again

    grown = tree(task("a"), task("b"))
    assert _encode(enc, 3 * KEYFRAME_INTERVAL + 1, grown, 1000) == "delta"
    kinds = [_encode(enc, n, grown, 1000 + n) for n in range(152, 4 * KEYFRAME_INTERVAL + 2)]
    assert kinds.count("key") == 1
    assert kinds[4 * KEYFRAME_INTERVAL - 152] == "key"
    assert _encode(enc, 5 * KEYFRAME_INTERVAL, grown, 5000) == "[]"


def test_a_frame_after_someone_else_s_is_a_keyframe() -> None:
    enc = FrameEncoder()
    t = tree(task("a"))
    enc.encode(0, t, tree_hash(t), previous_seq=None)
    enc.committed(5)
    key, delta = enc.encode(1, t, tree_hash(t), previous_seq=9)  # e.g. after a rewind
    assert key is not None
    assert delta is None


def test_a_delta_bigger_than_the_tree_is_written_as_a_keyframe() -> None:
    enc = FrameEncoder()
    old: dict[str, Any] = {"tag": "workflow", "children": []}
    new = {"tag": "workflow", "children": [task(f"u{i}") for i in range(30)]}
    _encode(enc, 1, old, 1)
    assert _encode(enc, 2, new, 2) == "key"


# ---------------------------------------------------------------------------- end to end


@contextlib.contextmanager
def recorded_frames() -> Iterator[dict[int, dict[str, Any]]]:
    """Record the tree the engine rendered at each frame it commits, by frame number."""
    seen: dict[int, dict[str, Any]] = {}
    original = _loop.RunLoop._commit_frame

    def commit(self: _loop.RunLoop, plan: Any) -> None:
        seen[self.frame_no] = copy.deepcopy(plan.tree)
        original(self, plan)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_loop.RunLoop, "_commit_frame", commit)
        yield seen


@st.composite
def specs(draw: st.DrawFn) -> Any:
    """A deterministic workflow as data: groups, tasks, branches and mounts on outputs."""
    ids = iter(f"n{i}" for i in range(1000))
    made: list[str] = []

    def node(depth: int) -> Any:
        kind = draw(st.sampled_from(["task", "task", "seq", "par", "when", "after"]))
        if depth >= 3 or kind == "task" or (kind in ("when", "after") and not made):
            node_id = next(ids)
            made.append(node_id)
            return ("task", node_id, draw(st.booleans()))
        if kind in ("seq", "par"):
            kids = [node(depth + 1) for _ in range(draw(st.integers(1, 3)))]
            return (kind, kids, draw(st.sampled_from([None, 1, 2])))
        dep = draw(st.sampled_from(made))
        if kind == "when":
            return ("when", dep, node(depth + 1), node(depth + 1))
        return ("after", dep, node(depth + 1))

    return ("seq", [node(0) for _ in range(draw(st.integers(1, 4)))], None)


def build(spec: Any, ctx: Any) -> Any:
    kind = spec[0]
    if kind == "task":
        _, node_id, compute = spec
        if compute:
            return Task(node_id, output=dict, run=lambda: {"id": node_id})
        return Task(node_id, output=dict, value={"id": node_id}, label=node_id.upper())
    if kind == "seq":
        return Sequence(*(build(k, ctx) for k in spec[1]))
    if kind == "par":
        return Parallel(*(build(k, ctx) for k in spec[1]), max_concurrency=spec[2])
    done = ctx.output_maybe(dict, spec[1]) is not None
    if kind == "when":
        return Branch(done, then=build(spec[2], ctx), else_=build(spec[3], ctx))
    return build(spec[2], ctx) if done else None


async def frames_of(store: MemoryEventStore, run_id: str) -> list[FrameCommitted]:
    events = [decode_event(r.type, r.data) for r in await store.read(run_id)]
    return [e for e in events if isinstance(e, FrameCommitted)]


async def check_rebuilt(spec: Any) -> None:
    @workflow("generated")
    def wf(ctx: Any) -> Any:
        return build(spec, ctx)

    store = MemoryEventStore()
    with recorded_frames() as rendered:
        result = await run_workflow(wf, store=store, run_id="g", max_concurrency=2)
    assert result.status == "finished", result
    frames = await frames_of(store, "g")
    assert [f.frame_no for f in frames] == sorted(rendered)
    assert frames[0].keyframe != NULL_RAW
    for frame in frames:
        assert (frame.keyframe == NULL_RAW) != (frame.delta == NULL_RAW)
        rebuilt = await tree_at("g", frame.frame_no, store=store)
        assert rebuilt == rendered[frame.frame_no]
        assert tree_hash(rebuilt) == frame.xml_hash


@given(specs())
@settings(SETTINGS, max_examples=40)
def test_the_tree_rebuilt_at_every_frame_is_the_tree_rendered_then(spec: Any) -> None:
    anyio.run(check_rebuilt, spec)


def test_a_long_run_mixes_keyframes_and_deltas_and_rebuilds_every_frame() -> None:
    # 130 tasks mounted one by one: a changed tree at every frame, keyframes at 50, 100.
    spec: Any = ("task", "n0", False)
    for i in range(1, 130):
        spec = ("seq", [spec, ("after", f"n{i - 1}", ("task", f"n{i}", i % 3 == 0))], None)
    anyio.run(check_rebuilt, spec)

    async def keyframes() -> list[int]:
        @workflow("long")
        def wf(ctx: Any) -> Any:
            return build(spec, ctx)

        store = MemoryEventStore()
        await run_workflow(wf, store=store, run_id="l")
        return [f.frame_no for f in await frames_of(store, "l") if f.keyframe != NULL_RAW]

    assert anyio.run(keyframes) == [0, 50, 100]


def test_compile_tree_hash_is_the_canonical_json_hash() -> None:
    plan = compile_tree(
        [Task("a", output=dict, value={}), Parallel(Task("b", output=dict, value={}))]
    )
    assert plan.xml_hash == tree_hash(plan.tree)
