"""The REST API served by the Jupyter Server extension (functions_nb.server)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tornado.httpclient

from functions_nb.server.handlers import jsonable
from tests.conftest import ADD_RS, API, BOOM_RS

pytest_plugins = ["pytest_jupyter.jupyter_server"]



@pytest.fixture
def limits():
    return {}


@pytest.fixture
def jp_server_config(tmp_path, limits):
    return {"ServerApp": {"jpserver_extensions": {"functions_nb.server": True}},
            "FunctionsNB": {"store": str(tmp_path / "store"), **limits}}


async def deploy_add(api):
    return await api("functions", method="POST",
                     body={"language": "rust", "source": ADD_RS, "name": "add"})


def assert_error(resp, data, status, code=None):
    assert resp.code == status, (resp.code, data)
    assert set(data) == {"error"} and set(data["error"]) == {"code", "message"}
    if code:
        assert data["error"]["code"] == code


async def test_deploy_list_get_invoke(api):
    resp, data = await deploy_add(api)
    assert resp.code == 201, data
    assert data["name"] == "add" and data["version"] == 1 and data["language"] == "rust"

    resp, data = await api("functions")
    assert resp.code == 200
    assert data["functions"] == [{"name": "add", "version": 1, "language": "rust",
                                  "signature": data["functions"][0]["signature"]}]
    assert "i32" in data["functions"][0]["signature"]

    resp, data = await api("functions", "add")
    assert resp.code == 200 and data["name"] == "add"
    assert [v["version"] for v in data["versions"]] == [1]

    resp, data = await api("functions", "add", "invoke", method="POST", body={"args": [2, 3]})
    assert resp.code == 200, data
    assert data["value"] == 5 and data["status"] == "ok" and data["execution_id"]
    assert data["duration_ms"] >= 0

    resp, data = await api("functions", "add@1", "invoke", method="POST",
                           body={"args": [2, 3], "options": {"tier_retries": {"code": 1}}})
    assert resp.code == 200, data
    assert data["value"] == 5 and data["tier"] == "code"

    # same source again: the identical version, nothing compiled
    resp, data = await deploy_add(api)
    assert resp.code == 200 and data["cached"] is True


async def test_errors_are_json(api):
    await deploy_add(api)
    resp, data = await api("functions", "add", "invoke", method="POST", body={"args": [1]})
    assert_error(resp, data, 400, "bad_arguments")
    resp, data = await api("functions", "add", "invoke", method="POST", body={"args": "x"})
    assert_error(resp, data, 400, "bad_arguments")
    resp, data = await api("functions", "add", "invoke", method="POST", body="{not json")
    assert_error(resp, data, 400, "bad_json")
    resp, data = await api("functions", "nope", "invoke", method="POST", body={"args": []})
    assert_error(resp, data, 404, "not_found")
    resp, data = await api("functions", "nope")
    assert_error(resp, data, 404, "not_found")
    resp, data = await api("no", "such", "route")
    assert_error(resp, data, 404, "not_found")


async def test_compile_error(api):
    resp, data = await api("functions", method="POST",
                           body={"language": "rust", "name": "bad",
                                 "source": "fn bad(a: i32) -> i32 {\n    a +\n}\n"})
    assert_error(resp, data, 400, "compile_error")
    assert "cell:" in data["error"]["message"]
    resp, data = await api("functions", method="POST", body={"language": "rust"})
    assert_error(resp, data, 400, "bad_arguments")


async def test_history_routes(api, jp_serverapp):
    await deploy_add(api)
    for a in range(3):
        await api("functions", "add", "invoke", method="POST", body={"args": [a, 1]})
    jp_serverapp.web_app.settings["functions_nb"].fx.flush()

    resp, data = await api("logs", params={"name": "add", "limit": "2"})
    assert resp.code == 200, data
    assert len(data["rows"]) == 2 and data["rows"][0]["function"] == "add"

    resp, data = await api("metrics", "add")
    assert resp.code == 200, data
    assert data["count"] == 3 and data["errors"] == 0 and data["p50"] >= 0 and data["p95"] >= 0

    resp, data = await api("breakers")
    assert resp.code == 200
    assert data["breakers"] and data["breakers"][0]["state"] == "closed"

    resp, data = await api("sql", method="POST",
                           body={"query": "SELECT count(*) AS n FROM executions WHERE function = 'add'"})
    assert resp.code == 200, data
    assert data["rows"] == [{"n": 3}] and data["columns"] == ["n"]

    resp, data = await api("sql", method="POST", body={"query": "DELETE FROM executions"})
    assert_error(resp, data, 400, "read_only")
    resp, data = await api("sql", method="POST", body={"query": "SELECT 1; DROP TABLE executions"})
    assert_error(resp, data, 400, "read_only")
    resp, data = await api("sql", method="POST", body={"query": "SELECT nope FROM executions"})
    assert_error(resp, data, 400, "sql_error")

    resp, data = await api("logs", params={"limit": "abc"})
    assert_error(resp, data, 400, "bad_arguments")


async def test_human_tasks(api, jp_serverapp):
    await deploy_add(api)
    resp, data = await api("functions", "add", "invoke", method="POST",
                           body={"args": [2, 3], "options": {"start_tier": "human"}})
    assert resp.code == 202, data
    task_id = data["task_id"]

    resp, data = await api("human", "tasks")
    assert resp.code == 200
    assert [t["task_id"] for t in data["tasks"]] == [task_id]

    resp, data = await api("human", "tasks", task_id, "answer", method="POST",
                           body={"decision": "value", "value": "not a number"})
    assert_error(resp, data, 400, "bad_arguments")
    resp, data = await api("human", "tasks", task_id, "answer", method="POST",
                           body={"decision": "value", "value": 42, "who": "ann", "why": "checked"})
    assert resp.code == 200, data
    assert data["decision"] == "value" and data["who"] == "ann"
    resp, data = await api("human", "tasks", task_id, "answer", method="POST",
                           body={"decision": "approve"})
    assert_error(resp, data, 400)  # the first answer stands
    resp, data = await api("human", "tasks", "ffffffffffff", "answer", method="POST",
                           body={"decision": "reject"})
    assert_error(resp, data, 404)

    resp, data = await api("human", "tasks")
    assert data["tasks"] == []
    fx = jp_serverapp.web_app.settings["functions_nb"].fx
    assert fx.human.get(task_id).wait(5) == 42


async def test_health_and_openapi(api):
    resp, data = await api("health")
    assert resp.code == 200 and data["status"] == "ok"

    resp, doc = await api("openapi.json")
    assert resp.code == 200
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/health", "/openapi.json", "/functions", "/functions/{target}",
        "/functions/{target}/invoke", "/logs", "/metrics/{name}", "/breakers", "/summary", "/sql",
        "/human/tasks", "/human/tasks/{task_id}/answer"}
    assert doc["servers"][0]["url"].endswith("/functions-nb/api")
    for item in doc["paths"].values():
        for op in item.values():
            assert op["operationId"] and "200" in op["responses"] and "403" in op["responses"]


async def test_unauthenticated_refused(jp_fetch, jp_http_port, jp_base_url):
    for path in ("health", "functions", "openapi.json"):
        with pytest.raises(tornado.httpclient.HTTPClientError) as err:
            await jp_fetch(*API, path, headers={"Authorization": ""})
        assert err.value.code in (401, 403)
        assert "error" in json.loads(err.value.response.body)
    client = tornado.httpclient.AsyncHTTPClient()
    url = f"http://localhost:{jp_http_port}{jp_base_url}functions-nb/api/functions"
    resp = await client.fetch(url, method="POST", raise_error=False,
                              body=json.dumps({"language": "rust", "source": ADD_RS, "name": "add"}))
    assert resp.code in (401, 403)


@pytest.mark.parametrize("limits", [{"max_body_bytes": 1000}])
async def test_body_too_large(api):
    resp, data = await api("functions", method="POST",
                           body={"language": "rust", "name": "big", "source": "x" * 2000})
    assert_error(resp, data, 413, "body_too_large")


@pytest.mark.parametrize("limits", [{"rate_limit": 0.5, "rate_burst": 3}])
async def test_rate_limit(api):
    codes = []
    for _ in range(5):
        resp, data = await api("health")
        codes.append(resp.code)
    assert codes[:3] == [200, 200, 200] and codes[3] == 429, codes
    assert_error(resp, data, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1


async def test_function_failures_and_breaker(api):
    resp, data = await api("functions", method="POST",
                           body={"language": "rust", "source": BOOM_RS, "name": "boom"})
    assert resp.code == 201, data
    resp, data = await api("functions", "boom", "invoke", method="POST", body={"args": [0]})
    assert resp.code == 200 and data["value"] == 0
    for _ in range(5):  # the default breaker opens after 5 failures
        resp, data = await api("functions", "boom", "invoke", method="POST", body={"args": [1]})
        assert_error(resp, data, 422, "runtime_error")
        assert "bad input 1" in data["error"]["message"]
    resp, data = await api("functions", "boom", "invoke", method="POST", body={"args": [1]})
    assert_error(resp, data, 503, "circuit_open")
    assert int(resp.headers["Retry-After"]) >= 1
    resp, data = await api("breakers")
    assert [b["state"] for b in data["breakers"]] == ["open"]


async def test_summary(api, jp_serverapp):
    resp, data = await api("summary")
    assert resp.code == 200, data
    assert data == {"functions": [], "recent": [], "tasks": []}

    await deploy_add(api)
    await api("functions", method="POST", body={"language": "rust", "name": "add", "force": True,
                                                "source": ADD_RS.replace("a + b", "b + a")})
    await api("functions", method="POST", body={"language": "rust", "source": BOOM_RS, "name": "boom"})
    for a in range(3):
        await api("functions", "add", "invoke", method="POST", body={"args": [a, 1]})
    for _ in range(5):
        await api("functions", "boom", "invoke", method="POST", body={"args": [1]})
    resp, data = await api("functions", "add", "invoke", method="POST",
                           body={"args": [1, 1], "options": {"start_tier": "human"}})
    task_id = data["task_id"]
    jp_serverapp.web_app.settings["functions_nb"].fx.flush()

    resp, data = await api("summary", params={"recent": "4"})
    assert resp.code == 200, data
    rows = {f["name"]: f for f in data["functions"]}
    assert rows["add"]["versions"] == 2 and rows["add"]["version"] == 2
    assert rows["add"]["language"] == "rust" and rows["add"]["breaker"] == "closed"
    assert rows["add"]["count"] == 3 and rows["add"]["errors"] == 0
    assert rows["add"]["last_status"] == "ok" and rows["add"]["p50"] >= 0
    assert rows["boom"]["breaker"] == "open" and rows["boom"]["errors"] == 5
    assert rows["boom"]["last_status"] == "error"
    assert len(data["recent"]) == 4
    assert [t["task_id"] for t in data["tasks"]] == [task_id]

    resp, data = await api("summary", params={"recent": "0"})
    assert_error(resp, data, 400, "bad_arguments")


def test_jsonable():
    value = {"a": np.arange(3, dtype=np.int32), "b": np.float64(1.5), "c": b"hi",
             "d": float("nan"), "e": (1, 2)}
    assert jsonable(value) == {"a": [0, 1, 2], "b": 1.5, "c": "hi", "d": None, "e": [1, 2]}


def test_enable_on_install_config():
    path = Path(__file__).parents[1] / "jupyter-config" / "jupyter_server_config.d" / "functions_nb.json"
    config = json.loads(path.read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"functions_nb.server": True}}}
    from functions_nb.server import _jupyter_server_extension_points

    assert _jupyter_server_extension_points() == [{"module": "functions_nb.server"}]


async def test_bad_options_are_400(api):
    """Wrong JSON types in cascade options (per call or deploy-time defaults) are the caller's
    400, not a 500 from deep in the engine; found by tests/test_api_contract.py."""
    await deploy_add(api)
    for options in ({"skip_tiers": 5}, {"total_timeout": "x"}, {"tier_timeouts": {"code": "x"}},
                    {"tier_timeouts": None}, {"tier_retries": {"code": 11}}, {"timeout": 1},
                    {"wait_human": True}, {"parallel": "yes"}):
        resp, data = await api("functions", "add", "invoke", method="POST",
                               body={"args": [1, 2], "options": options})
        assert_error(resp, data, 400, "bad_arguments")
    resp, data = await api("functions", "add", "invoke", method="POST",
                           body={"args": [1, 2], "timeout": 1, "options": {"tier_timeouts": [1]}})
    assert_error(resp, data, 400, "bad_arguments")
    for options in ({"cascade": 1}, {"cascade": {"start_tier": "nope"}}, {"cascade": {"skip_tiers": 5}}):
        resp, data = await api("functions", method="POST", body={
            "language": "rust", "source": ADD_RS, "name": "add", "force": True, "options": options})
        assert_error(resp, data, 400, "bad_arguments")
    for line_offset in (-1, 10**9):
        resp, data = await api("functions", method="POST", body={
            "language": "rust", "source": ADD_RS, "name": "add", "line_offset": line_offset})
        assert_error(resp, data, 400, "bad_arguments")
    resp, data = await api("functions", method="POST", body={
        "language": "rust", "source": ADD_RS, "name": "add", "timeout": True})
    assert_error(resp, data, 400, "bad_arguments")
    # a body tornado cannot parse: 400 with its reason as the code (was "server_error")
    resp, data = await api("health", method="GET", allow_nonstandard_methods=True, body="x",
                           headers={"Content-Type": "multipart/form-data"})
    assert_error(resp, data, 400, "bad_request")
