"""Auth token, body limits, JSON depth, workflow paths under the root, bind refusal."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
from smithers.engine import InvalidInputError
from smithers.server import check_bind, is_loopback

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from starlette.testclient import TestClient

TOKEN = "s3cret-token"


def _code(r: Any) -> str:
    code: str = r.json()["error"]["code"]
    return code


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"x-smithers-key": TOKEN[:-1]}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"authorization": f"bearer {TOKEN}"}, 200),
        ({"x-smithers-key": TOKEN}, 200),
    ],
)
def test_every_route_but_health_needs_the_token(
    make_api: Callable[..., TestClient], headers: dict[str, str], status: int
) -> None:
    api = make_api(auth_token=TOKEN)
    assert api.get("/health").status_code == 200
    for path in ("/v1/runs", "/openapi.json", "/v1/approvals", "/v1/audit"):
        r = api.get(path, headers=headers)
        assert r.status_code == status, (path, r.text)
        if status == 401:
            assert _code(r) == "UNAUTHORIZED"
    post = api.post("/v1/runs", json={"workflowPath": "count.py"}, headers=headers)
    assert post.status_code == (401 if status == 401 else 201)


def test_no_token_configured_means_open(api: TestClient) -> None:
    assert api.get("/v1/runs").status_code == 200


def test_a_body_over_one_mib_is_413(api: TestClient) -> None:
    big = b'{"input": {"x": "' + b"a" * (1024 * 1024) + b'"}}'
    r = api.post("/v1/runs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert _code(r) == "PAYLOAD_TOO_LARGE"

    def chunks() -> Any:  # no Content-Length: counted as it streams in
        for _ in range(20):
            yield b"a" * 65536

    streamed = api.post("/v1/runs", content=chunks())
    assert streamed.status_code == 413
    assert _code(streamed) == "PAYLOAD_TOO_LARGE"
    assert api.get("/v1/runs").status_code == 200


def test_json_nested_deeper_than_32_is_invalid_json(api: TestClient) -> None:
    deep = "[" * 33 + "]" * 33
    r = api.post("/v1/runs", content=f'{{"input": {{"x": {deep}}}}}')
    assert r.status_code == 400
    assert _code(r) == "INVALID_JSON"
    assert "32" in r.json()["error"]["message"]
    very = "{" + '"a":{' * 100_000 + "}" * 100_001
    assert _code(api.post("/v1/runs", content=very)) == "INVALID_JSON"
    in_string = '{"workflowPath": "count.py", "input": {"s": "' + "[" * 100 + '"}}'
    assert api.post("/v1/runs", content=in_string).status_code == 201
    for body in ("{not json", "[1, 2]", '"text"'):
        r = api.post("/v1/runs", content=body)
        assert (r.status_code, _code(r)) == (400, "INVALID_JSON"), body


@pytest.mark.parametrize(
    "path",
    ["../outside.py", "/etc/passwd", "sub/../../outside.py", "link.py", "linkdir/count.py"],
)
def test_workflow_paths_must_resolve_under_the_root(
    api: TestClient, root: Path, tmp_path: Path, path: str
) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text((root / "count.py").read_text("utf-8"), "utf-8")
    (root / "sub").mkdir(exist_ok=True)
    if not (root / "link.py").exists():
        os.symlink(outside, root / "link.py")
        other = tmp_path / "elsewhere"
        other.mkdir()
        (other / "count.py").write_text(outside.read_text("utf-8"), "utf-8")
        os.symlink(other, root / "linkdir")
    r = api.post("/v1/runs", json={"workflowPath": path})
    assert r.status_code == 400, r.text
    assert _code(r) == "WORKFLOW_PATH_OUTSIDE_ROOT"
    assert api.get("/v1/runs").json()["runs"] == []


def test_a_path_inside_the_root_with_a_name_is_allowed(api: TestClient) -> None:
    r = api.post("/v1/runs", json={"workflowPath": "./sub/../count.py:count"})
    assert r.status_code == 201, r.text
    missing = api.post("/v1/runs", json={"workflowPath": "nope.py"})
    assert missing.status_code == 400
    assert _code(missing) == "INVALID_INPUT"


def test_bad_actor_and_field_types_are_400(api: TestClient) -> None:
    r = api.post("/v1/runs", json={"workflowPath": "count.py", "by": "x\x00y"})
    assert r.status_code == 400
    assert _code(r) == "INVALID_INPUT"
    r = api.post("/v1/runs", json={"workflowPath": 5})
    assert r.status_code == 400
    assert _code(r) == "INVALID_REQUEST"
    assert r.json()["error"]["details"]["field"] == "workflowPath"
    r = api.post("/v1/runs", json={"workflowPath": "count.py", "runId": "bad id\n"})
    assert r.status_code == 400
    assert _code(r) == "INVALID_INPUT"


def test_non_loopback_bind_needs_a_token() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("10.1.2.3")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", TOKEN)
    with pytest.raises(InvalidInputError, match="auth token"):
        check_bind("0.0.0.0", None)


def test_extra_routes_sit_behind_the_same_guard(root: Path, db: Path) -> None:
    from smithers.server import ServerConfig, create_app
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def metrics(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("runs 0\n")

    config = ServerConfig(db=db, root=root.resolve(), auth_token=TOKEN, resume_on_start=False)
    app = create_app(config, routes=[Route("/metrics", metrics)])
    with TestClient(app) as api:
        assert api.get("/metrics").status_code == 401
        assert api.get("/metrics", headers={"x-smithers-key": TOKEN}).text == "runs 0\n"
