"""Attacks on the REST API (issue 14): each test sends what an attacker sent and checks that it
is refused with a JSON error and leaves nothing behind.

- /sql reads nothing but the history: DuckDB spellings that got past the old keyword filter
  (dollar quoting, quoted identifiers, E'' strings, query('…'), FROM "/path") and writes;
  the agentic tier's query_history tool uses the same connection; on an S3 store too.
- Jupyter's Authorizer decides every route (a read-only user can read, not deploy/invoke/answer).
- The rate limit is per identity: requests without credentials never spend a user's budget.
- Deeply nested JSON and versions written with non-ASCII digits are 400s, not 500s or version 1.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
import tornado.httpclient
from jupyter_server.auth import Authorizer, IdentityProvider, User

from functions_nb import history_sql
from functions_nb.client import Functions
from tests.conftest import ADD_RS

pytest_plugins = ["pytest_jupyter.jupyter_server"]



class ReadOnlyAuthorizer(Authorizer):
    """Allows only ``read``; records every question it is asked."""

    asked: list[tuple[str, str]] = []

    def is_authorized(self, handler, user, action, resource):
        ReadOnlyAuthorizer.asked.append((action, resource))
        return action == "read"


@pytest.fixture
def server_extra():
    return {}


@pytest.fixture
def jp_server_config(tmp_path, server_extra):
    functions = {"store": str(tmp_path / "store"), **server_extra.get("FunctionsNB", {})}
    return {"ServerApp": {"jpserver_extensions": {"functions_nb.server": True},
                          **server_extra.get("ServerApp", {})},
            "FunctionsNB": functions}


@pytest.fixture
def server_fx(jp_serverapp):
    """The server's own Functions (same store), for setting up and for checking effects."""
    return jp_serverapp.web_app.settings["functions_nb"].fx


def assert_error(resp, data, status, code=None):
    assert resp.code == status, (resp.code, data)
    assert set(data) == {"error"} and set(data["error"]) == {"code", "message"}, data
    if code:
        assert data["error"]["code"] == code, data


def executions(fx: Functions) -> list[dict]:
    fx.flush()
    return fx.sql("SELECT function, version, status FROM executions").to_dict(orient="records")


# --- /sql is read-only by construction ---------------------------------------------------------

def sql_attacks(secret_csv: str, out_dir: str) -> list[str]:
    """Each reads ``secret_csv`` or writes into ``out_dir`` with DuckDB's own syntax. The first
    five got past the keyword filter the route had."""
    return [
        f"SELECT * FROM $${secret_csv}$$",                       # dollar quoting
        f'SELECT * FROM "{secret_csv}"',                          # a quoted identifier
        f"SELECT * FROM E'{secret_csv}'",                         # an E'' string
        f"SELECT * FROM query('SELECT * FROM read_csv(''{secret_csv}'')')",
        f"SELECT * FROM query_table('{secret_csv}')",
        f"SELECT * FROM read_csv('{secret_csv}')",
        f"SELECT content FROM read_text('{secret_csv}')",
        f"SELECT * FROM read_csv('file://{secret_csv}')",
        f"SELECT * FROM glob('{out_dir}/*')",
        f"COPY (SELECT 1 AS x) TO '{out_dir}/copied.csv'",
        f"ATTACH '{out_dir}/attached.db' AS a",
        f"EXPORT DATABASE '{out_dir}/exported'",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "LOAD httpfs",
        f"SELECT 1; COPY (SELECT 1) TO '{out_dir}/second.csv'",
        "CREATE TABLE t AS SELECT 1",
    ]


@pytest.fixture
def host_files(tmp_path):
    """A host CSV holding a secret, and an empty folder a write would land in."""
    secret = f"TOPSECRET{uuid.uuid4().hex}"
    path = tmp_path / "host" / "secret.csv"
    path.parent.mkdir()
    path.write_text(f"name,value\napi_key,{secret}\n")
    out = tmp_path / "out"
    out.mkdir()
    return path, secret, out


async def test_sql_route_reads_only_the_history(api, server_fx, host_files):
    path, secret, out = host_files
    server_fx.deploy("rust", ADD_RS, name="add")
    server_fx.run("add", 2, 3)
    server_fx.flush()
    for query in sql_attacks(str(path), str(out)):
        resp, data = await api("sql", method="POST", body={"query": query})
        assert resp.code == 400, (query, resp.code, data)
        assert data["error"]["code"] in ("read_only", "sql_error"), (query, data)
        assert secret not in resp.body.decode(), query
    assert list(out.iterdir()) == []
    # /etc/passwd, the example, by the spellings that returned it
    for query in ('SELECT * FROM "/etc/passwd"', "SELECT * FROM $$/etc/passwd$$"):
        resp, data = await api("sql", method="POST", body={"query": query})
        assert resp.code == 400 and "root:" not in resp.body.decode(), (query, data)
    # what the route is for still works, views included, and reading a history file is allowed
    resp, data = await api("sql", method="POST", body={
        "query": "SELECT function, status FROM executions UNION ALL "
                 "SELECT function, status FROM tier_attempts"})
    assert resp.code == 200, data
    assert data["rows"] == [{"function": "add", "status": "ok"}] * 2
    resp, data = await api("sql", method="POST",
                           body={"query": "SELECT count(*) AS n FROM range(5)"}, params={"limit": "1"})
    assert resp.code == 200 and data["rows"] == [{"n": 5}]
    resp, data = await api("sql", method="POST", body={"query": "SELECT * FROM range(7)"},
                           params={"limit": "2"})
    assert resp.code == 200 and data["row_count"] == 7 and len(data["rows"]) == 2


@pytest.mark.parametrize("server_extra", [{"FunctionsNB": {"sql_timeout": 0.5}}])
async def test_sql_route_stops_a_long_query(api):
    started = time.monotonic()
    resp, data = await api("sql", method="POST",
                           body={"query": "SELECT count(*) FROM range(1000000000000)"})
    assert_error(resp, data, 400, "sql_timeout")
    assert time.monotonic() - started < 60  # interrupted, not run to the end (hours)


def test_read_only_connection_refuses_every_spelling(fx, host_files):
    """The module the route and the agentic tool share, on its own: refused with a
    ``BadArguments`` subclass, never the file's contents; the history stays readable."""
    path, secret, out = host_files
    fx.deploy("rust", ADD_RS, name="add")
    fx.run("add", 1, 1)
    for query in sql_attacks(str(path), str(out)):
        with pytest.raises(history_sql.HistoryQueryError) as err:
            history_sql.query(fx.history, query)
        assert secret not in str(err.value)
    assert list(out.iterdir()) == []
    fx.compact_history()  # the record, from a small JSON-lines file into Parquet
    files = [f for f in fx.store.fs.find(fx.history.root) if f.endswith(".parquet")]
    result = history_sql.query(fx.history, f"SELECT count(*) AS n FROM read_parquet('{files[0]}')")
    assert result.frame.to_dict(orient="records") == [{"n": 1}]
    # fx.sql, the user's own DuckDB in the user's own process, is not restricted
    assert fx.sql(f"SELECT value FROM read_csv('{path}')")["value"].tolist() == [secret]


def test_read_only_connection_on_s3(host_files):
    """On an S3 store the history objects are read through the store's fsspec filesystem;
    other keys of the same bucket, local files and other URLs are refused."""
    from tests.s3server import MotoServer, s3_storage_options

    path, secret, _ = host_files
    server = MotoServer().start()
    try:
        bucket = f"fnb-{uuid.uuid4().hex[:10]}"
        server.make_bucket(bucket)
        fx = Functions(store=f"s3://{bucket}/team", storage_options=s3_storage_options(server.endpoint))
        try:
            fx.deploy("rust", ADD_RS, name="add")
            fx.run("add", 2, 2)
            fx.store.fs.pipe(f"{bucket}/team/private.csv", f"k,v\na,{secret}\n".encode())
            result = history_sql.query(fx.history, "SELECT function, status FROM executions")
            assert result.frame.to_dict(orient="records") == [{"function": "add", "status": "ok"}]
            for query in (f"SELECT * FROM read_csv('s3://{bucket}/team/private.csv')",
                          f'SELECT * FROM "s3://{bucket}/team/private.csv"',
                          f"SELECT * FROM glob('s3://{bucket}/*')",
                          f"SELECT * FROM read_csv('{path}')",
                          f"COPY (SELECT 1) TO 's3://{bucket}/team/written.csv'"):
                with pytest.raises(history_sql.HistoryQueryError) as err:
                    history_sql.query(fx.history, query)
                assert secret not in str(err.value), query
            assert not fx.store.fs.exists(f"{bucket}/team/written.csv")
        finally:
            fx.close()
    finally:
        server.stop()


def test_agentic_query_history_uses_the_read_only_connection(fx, host_files):
    pytest.importorskip("pydantic_ai")
    from pydantic_ai.messages import ModelResponse, RetryPromptPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel

    from functions_nb.cascade.agentic import AgenticTier
    from tests.test_llm_tiers import answer, make_call, services

    path, secret, _ = host_files
    info = fx.deploy("rust", ADD_RS, name="add")
    fx.run("add", 1, 2)
    results: list[str] = []
    queries = [f"SELECT * FROM query('SELECT * FROM read_csv(''{path}'')')",
               f'SELECT * FROM "{path}"', "SELECT count(*) AS n FROM executions"]

    def agent(messages, agent_info):
        for part in messages[-1].parts:
            if isinstance(part, (ToolReturnPart, RetryPromptPart)):
                results.append(str(part.content))
        if len(results) < len(queries):
            return ModelResponse(parts=[ToolCallPart("query_history", {"sql": queries[len(results)]})])
        return answer(agent_info, 3)

    call = make_call(info, 1, 2, tier="agentic", options={"model": FunctionModel(agent)})
    assert AgenticTier(services(fx)).run(call) == 3
    assert len(results) == 3
    assert all(secret not in r for r in results)
    assert "refused" in results[0] and "refused" in results[1]
    assert '"rows": 1' in results[2]


# --- authorization ---------------------------------------------------------------------------

@pytest.mark.parametrize("server_extra", [{"ServerApp": {"authorizer_class": ReadOnlyAuthorizer}}])
async def test_read_only_user_can_read_and_nothing_else(api, server_fx):
    server_fx.deploy("rust", ADD_RS, name="add")
    pending = server_fx.cascade("add", 2, 3, start_tier="human")
    before = executions(server_fx)
    ReadOnlyAuthorizer.asked.clear()

    for path in (("health",), ("openapi.json",), ("functions",), ("functions", "add"),
                 ("logs",), ("metrics", "add"), ("breakers",), ("summary",), ("human", "tasks")):
        resp, data = await api(*path)
        assert resp.code == 200, (path, data)
    resp, data = await api("sql", method="POST", body={"query": "SELECT 1 AS one"})
    assert resp.code == 200 and data["rows"] == [{"one": 1}]

    refused = [
        (("functions",), {"language": "rust", "source": ADD_RS.replace("add", "intruder"),
                          "name": "intruder"}, "write"),
        (("functions",), {"language": "rust", "source": ADD_RS.replace("a + b", "b + a"),
                          "name": "add", "force": True}, "write"),
        (("functions", "add", "invoke"), {"args": [2, 3]}, "execute"),
        (("functions", "add@1", "invoke"), {"args": [2, 3], "options": {"start_tier": "code"}},
         "execute"),
        (("human", "tasks", pending.task_id, "answer"), {"decision": "value", "value": 5}, "write"),
    ]
    for path, body, action in refused:
        resp, data = await api(*path, method="POST", body=body)
        assert_error(resp, data, 403, "forbidden")
        assert action in data["error"]["message"] and "functions" in data["error"]["message"]
    assert {a for a in ReadOnlyAuthorizer.asked if a[1] == "functions"} == {
        ("read", "functions"), ("write", "functions"), ("execute", "functions")}
    # nothing happened: no new function or version, no execution, the task still pending
    assert [(i.name, i.version) for i in server_fx.list()] == [("add", 1)]
    assert not any("intruder" in f for f in server_fx.store.fs.find(server_fx.store.path("functions")))
    assert executions(server_fx) == before
    assert server_fx.human.get(pending.task_id).status == "pending"


# --- rate limit per identity -----------------------------------------------------------------

@pytest.mark.parametrize("server_extra", [{"FunctionsNB": {"rate_limit": 0.001, "rate_burst": 3}}])
async def test_unauthenticated_requests_do_not_spend_a_users_budget(api, jp_http_port, jp_base_url):
    client = tornado.httpclient.AsyncHTTPClient()
    url = f"http://localhost:{jp_http_port}{jp_base_url}functions-nb/api/health"
    for headers in [{}] * 10 + [{"Authorization": "token wrong"}] * 10:
        resp = await client.fetch(url, headers=headers, raise_error=False, follow_redirects=False)
        assert resp.code == 403, resp.body
        assert json.loads(resp.body)["error"]["code"] == "forbidden"
    codes = [(await api("health"))[0].code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # the token holder's own budget, and only theirs


class HeaderIdentityProvider(IdentityProvider):
    """Users named by an ``X-Test-User`` header (what a JupyterHub or password login gives:
    a stable user name per person); no header, no user."""

    def get_user(self, handler):
        name = handler.request.headers.get("X-Test-User")
        return User(name) if name else None


@pytest.mark.parametrize("server_extra", [{
    "ServerApp": {"identity_provider_class": HeaderIdentityProvider},
    "FunctionsNB": {"rate_limit": 0.001, "rate_burst": 3}}])
async def test_each_user_has_their_own_budget(api):
    codes = {}
    for user in ("alice", "bob"):
        codes[user] = [(await api("health", headers={"X-Test-User": user}))[0].code
                       for _ in range(4)]
    assert codes == {"alice": [200, 200, 200, 429], "bob": [200, 200, 200, 429]}
    resp, data = await api("health", headers={"X-Test-User": ""})
    assert_error(resp, data, 403, "forbidden")


# --- bad input -------------------------------------------------------------------------------

def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [65, 100_000])
async def test_deeply_nested_json_is_a_400(api, server_fx, depth):
    server_fx.deploy("rust", ADD_RS, name="add")
    before = executions(server_fx)
    bodies = [
        (("functions", "add", "invoke"), '{"args": [1, ' + nested(depth) + "]}"),
        (("functions",), '{"language": "rust", "name": "deep", "source": "x", "options": {"d": '
                         + nested(depth) + "}}"),
        (("sql",), '{"query": "SELECT 1", "x": ' + nested(depth) + "}"),
    ]
    for path, body in bodies:
        resp, data = await api(*path, method="POST", body=body)
        assert_error(resp, data, 400, "bad_json")
        assert "nested deeper than 64" in data["error"]["message"]
    assert [i.name for i in server_fx.list()] == ["add"]
    assert executions(server_fx) == before
    # within the limit, the request goes through to the function
    resp, data = await api("functions", "add", "invoke", method="POST",
                           body='{"args": [1, ' + nested(60) + "]}")
    assert_error(resp, data, 400, "bad_arguments")
    assert "nested" not in data["error"]["message"]


@pytest.mark.parametrize("version", ["²", "١", "１", "٣", "1" * 40])
async def test_versions_are_ascii_digits(api, server_fx, version):
    server_fx.deploy("rust", ADD_RS, name="add")
    target = f"add@{version}"  # jp_fetch percent-encodes it
    resp, data = await api("functions", target)
    assert_error(resp, data, 400, "bad_arguments")
    assert "ASCII digits" in data["error"]["message"]
    resp, data = await api("functions", target, "invoke", method="POST", body={"args": [2, 3]})
    assert_error(resp, data, 400, "bad_arguments")
    assert "ASCII digits" in data["error"]["message"]
    assert executions(server_fx) == []
    resp, data = await api("functions", "add@1", "invoke", method="POST", body={"args": [2, 3]})
    assert resp.code == 200 and data["value"] == 5


@pytest.mark.parametrize("server_extra", [{"FunctionsNB": {"max_timeout": 10.0, "max_memory_mb": 128}}])
async def test_limit_ceilings_come_from_the_server_config(api, server_fx):
    """The REST API's client checks the server's traitlets ceilings, not only the SDK's."""
    for options, needle in (({"timeout": 60}, "ceiling of 10 s"),
                            ({"timeout": 5, "memory_mb": 256}, "128 MB")):
        resp, data = await api("functions", method="POST",
                               body={"language": "rust", "source": ADD_RS, "name": "add", **options})
        assert resp.code == 400 and needle in data["error"]["message"], data
    assert server_fx.list() == []
