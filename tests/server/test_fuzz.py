"""A property-based fuzz of every route in ``/openapi.json`` (schemathesis): never a 5xx,
and every error has the one error shape."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.core import NotSet  # noqa: E402
from smithers.server import openapi_document  # noqa: E402

if TYPE_CHECKING:
    from starlette.testclient import TestClient

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture
def fuzz_api(make_api: Any) -> tuple[TestClient, str]:
    client: TestClient = make_api(auth_token="fuzz-token")
    started = client.post(
        "/v1/runs", json={"workflowPath": "count.py"}, headers={"x-smithers-key": "fuzz-token"}
    )
    assert started.status_code == 201
    return client, started.json()["runId"]


@pytest.mark.slow  # 22 operations x 25 examples: ~20 s
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_route_answers_5xx(case: Any, fuzz_api: tuple[TestClient, str]) -> None:
    api, run_id = fuzz_api
    params = case.path_parameters or {}
    if "id" in params and len(str(params["id"])) % 2 == 0:
        params["id"] = run_id  # half the cases reach a real run
    auth = {"authorization", "x-smithers-key"}  # schemathesis fills these at random
    headers = {k: str(v) for k, v in (case.headers or {}).items() if k.lower() not in auth}
    headers["x-smithers-key"] = "fuzz-token"
    kwargs: dict[str, Any] = {"params": case.query or None, "headers": headers}
    if case.body is not None and not isinstance(case.body, NotSet):
        kwargs["content"] = json.dumps(case.body, default=str)
        headers["content-type"] = "application/json"
    response = api.request(case.method, case.formatted_path, **kwargs)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str)
        assert isinstance(error["message"], str)
