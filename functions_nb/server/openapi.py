"""The OpenAPI 3.1 document of the REST API, served at ``/functions-nb/api/openapi.json``."""

from __future__ import annotations

from typing import Any

from ..config import MAX_LINE_OFFSET
from .config import MAX_TIER_RETRIES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad request (bad arguments, compile error, bad JSON or JSON nested too deep, "
                 "a version not written in ASCII digits, refused or failed SQL)",
            404: "Unknown function, version or task", 413: "Request body too large",
            422: "The function ran and failed (trap, panic, timeout, memory limit, cascade exhausted)",
            429: "Rate limited or executor queue full (see Retry-After)",
            501: "A language toolchain is missing on the server",
            503: "Circuit breaker open or store unavailable (see Retry-After)"}
    return {str(c): _json(_ERROR, text[c]) for c in (*codes, 413, 429)}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def _languages() -> list[str]:
    """The names ``Functions.deploy`` accepts: the registry's languages and their aliases."""
    from ..languages import ALIASES, names

    return [*names(), *ALIASES]


def _cascade_options() -> dict[str, Any]:
    """The cascade's engine options (other keys are tier options: model, prompt, question, ...)."""
    from ..cascade.base import TIERS

    tier = {"enum": list(TIERS)}
    return {
        "type": "object",
        "description": "cascade options; other keys are tier options (model, prompt, question, ...). "
                       "`timeout` is the request's top-level field; `wait_human` is refused (a human "
                       "tier answers 202 with a task).",
        "properties": {
            "start_tier": tier,
            "skip_tiers": {"anyOf": [tier, {"type": "array", "items": tier}]},
            "tier_retries": {"type": "object", "propertyNames": tier,
                             "additionalProperties": {"type": "integer", "minimum": 0,
                                                      "maximum": MAX_TIER_RETRIES}},
            "tier_timeouts": {"type": "object", "propertyNames": tier,
                              "additionalProperties": {"type": "number", "exclusiveMinimum": 0}},
            "total_timeout": {"type": "number", "exclusiveMinimum": 0},
            "parallel": {"type": "boolean"}, "fallback": {"type": "boolean"},
            "backoff": {"type": "number", "minimum": 0},
            "wait_human": {"const": False},
        },
        "not": {"required": ["timeout"]},
    }


_ANY: dict[str, Any] = {}
_MS = {"type": ["number", "null"]}
#: A function's history numbers (functions_nb.history_queries defines them).
_STATS = {
    "count": {"type": "integer", "description": "calls: records that ended (not skipped tiers, "
              "not pending human tasks), caller mistakes excluded; rejected calls count"},
    "errors": {"type": "integer", "description": "calls whose status is not ok (error, timeout, "
               "aborted, rejected)"},
    "caller_errors": {"type": "integer", "description": "caller mistakes (bad arguments, unknown "
                      "function or version): the function did not run; not errors"},
    "error_rate": {"type": ["number", "null"], "description": "errors / count"},
    "p50": _MS, "p95": _MS,
    "p99": {**_MS, "description": "latency percentiles in ms over the calls that ran (not "
            "rejected ones)"},
    "last_status": {"type": ["string", "null"], "description": "status of the newest call, "
                    "across cascade tiers"},
    "last_at": {"type": ["string", "null"], "description": "start of the newest call (ISO 8601, "
                "UTC)"},
}
_ROWS = _obj({"rows": {"type": "array", "items": {"type": "object"}}}, ["rows"])
#: The newest recorded breaker transition of a function, by any process on the store.
_TRANSITION = {
    "type": ["object", "null"],
    "description": "the newest breaker transition recorded by any process on the store (a "
                   "kernel, this server, a CLI, a Dask worker): whose breaker it is and what "
                   "it did; null when none was recorded",
    "properties": {
        "breaker": {"type": "string", "description": "name@version"},
        "version": {"type": "integer"},
        "state": {"type": "string", "description": "the state it moved to: closed, open, half_open"},
        "from": {"type": "string"}, "why": {"type": "string"},
        "at": {"type": "string", "description": "when (ISO 8601, UTC)"},
        "host": {"type": "string"}, "pid": {"type": "integer"},
        "process": {"type": "string", "description": "kernel, server, dask worker or the "
                    "program's name"},
        "server": {"type": "boolean", "description": "true when it is this server's own breaker"},
    },
}


def openapi(server_url: str = "/functions-nb/api") -> dict[str, Any]:
    """The document; ``server_url`` is the API's base path on this server."""
    summary = _obj({"name": {"type": "string"}, "version": {"type": "integer"},
                    "language": {"type": "string"}, "signature": {"type": "string"}},
                   ["name", "version", "language", "signature"])
    info = {"$ref": "#/components/schemas/FunctionInfo"}
    cascade = {"$ref": "#/components/schemas/CascadeOptions"}
    target = _path_param("target", "name or name@version (version in ASCII digits)")
    paths: dict[str, Any] = {
        "/health": {"get": {"operationId": "health", "summary": "Liveness and version",
                            "responses": {"200": _json(_obj({"status": {"type": "string"},
                                                              "version": {"type": "string"},
                                                              "store": {"type": "string"}}))}}},
        "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                  "responses": {"200": _json({"type": "object"})}}},
        "/functions": {
            "get": {"operationId": "listFunctions", "summary": "Deployed functions at their latest version",
                    "responses": {"200": _json(_obj({"functions": {"type": "array", "items": summary}},
                                                    ["functions"]))}},
            "post": {"operationId": "deploy", "summary": "Compile and store a new version",
                     "requestBody": _body(_obj({
                         "language": {"enum": _languages(), "examples": ["rust"],
                                      "description": "a language name or alias (case-insensitive)"},
                         "source": {"type": "string", "description": "the cell's source; for "
                                    "onnx, the model's bytes base64-encoded"},
                         "name": {"type": "string"},
                         "timeout": {"type": "number", "exclusiveMinimum": 0},
                         "memory_mb": {"type": "integer", "minimum": 1},
                         "options": {"type": "object", "description": "stored with the version: "
                                     "cascade (default cascade options), description, tier options",
                                     "properties": {"cascade": cascade}},
                         "flags": {"type": "object"}, "force": {"type": "boolean"},
                         "line_offset": {"type": "integer", "minimum": 0, "maximum": MAX_LINE_OFFSET}},
                         ["language", "source", "name"])),
                     "responses": {"201": _json(info, "Deployed"),
                                   "200": _json(info, "Identical version already deployed"),
                                   **_errors(400, 501, 503)}}},
        "/functions/{target}": {"get": {
            "operationId": "getFunction", "summary": "Function info with its versions",
            "parameters": [target],
            "responses": {"200": _json(info), **_errors(400, 404, 503)}}},
        "/functions/{target}/invoke": {"post": {
            "operationId": "invoke", "summary": "Invoke with positional args (cascade options run the "
                                                "cascade)",
            "parameters": [target],
            "requestBody": _body(_obj({"args": {"type": "array"},
                                       "options": cascade,
                                       "timeout": {"type": "number", "exclusiveMinimum": 0}})),
            "responses": {
                "200": _json(_obj({"value": _ANY, "tier": {"type": "string"},
                                   "status": {"type": "string"}, "duration_ms": {"type": "number"},
                                   "execution_id": {"type": "string"}},
                                  ["value", "status", "execution_id"])),
                "202": _json(_obj({"status": {"const": "pending"}, "task_id": {"type": "string"},
                                   "execution_id": {"type": ["string", "null"]}},
                                  ["status", "task_id"]), "A person must answer a human task"),
                **_errors(400, 404, 422, 503)}}},
        "/logs": {"get": {
            "operationId": "logs", "summary": "Recent executions, newest first",
            "parameters": [{"name": "name", "in": "query", "schema": {"type": "string"}},
                           {"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}],
            "responses": {"200": _json(_ROWS), **_errors(400)}}},
        "/metrics/{name}": {"get": {
            "operationId": "metrics", "summary": "Calls, errors, caller mistakes, latency "
                                                 "percentiles and last status",
            "parameters": [_path_param("name", "function name")],
            "responses": {"200": _json(_obj({"name": {"type": "string"}, **_STATS},
                                            ["name", *_STATS])), **_errors(400)}}},
        "/breakers": {"get": {
            "operationId": "breakers", "summary": "Circuit breaker states of the versions this "
                                                  "server loaded (breakers), and the newest "
                                                  "transition per function recorded by any "
                                                  "process on the store (recorded)",
            "responses": {"200": _json(_obj({"breakers": {"type": "array",
                                                          "items": {"type": "object"}},
                                             "recorded": {"type": "array", "items": _TRANSITION}},
                                            ["breakers", "recorded"]))}}},
        "/summary": {"get": {
            "operationId": "summary", "summary": "What the sidebar shows: functions with versions, "
                                                 "breaker state and history numbers (as "
                                                 "metrics/{name}); recent executions; pending "
                                                 "human tasks",
            "parameters": [{"name": "recent", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            "responses": {"200": _json(_obj({
                "functions": {"type": "array", "items": _obj({
                    "name": {"type": "string"}, "version": {"type": "integer"},
                    "language": {"type": "string"}, "signature": {"type": "string"},
                    "versions": {"type": "integer"},
                    "dependencies": {"type": "array", "items": {"type": "string"},
                                     "description": "the latest version's pinned packages, "
                                                    "each 'name version'"},
                    "breaker": {"type": "string", "description": "this server's breaker of the "
                                "latest version (kernels keep their own: see breaker_last)"},
                    "breaker_last": _TRANSITION,
                    "last_error": {"type": ["object", "null"], "description": "the newest failed "
                                   "record: an error, or a caller mistake (caller true)",
                                   "properties": {"kind": {"type": ["string", "null"]},
                                                  "message": {"type": ["string", "null"]},
                                                  "status": {"type": "string"},
                                                  "tier": {"type": "string"},
                                                  "caller": {"type": "boolean"},
                                                  "at": {"type": ["string", "null"]}}},
                    **_STATS})},
                "recent": {"type": "array", "items": {"type": "object"}},
                "tasks": {"type": "array", "items": {"type": "object"}}},
                ["functions", "recent", "tasks"])), **_errors(400)}}},
        "/sql": {"post": {
            "operationId": "sql", "summary": "Read-only DuckDB SQL over the executions table "
                                             "(one SELECT statement; no file, URL, setting, "
                                             "extension or write: error codes read_only, "
                                             "sql_error, sql_timeout)",
            "parameters": [{"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 100000}}],
            "requestBody": _body(_obj({"query": {"type": "string"}}, ["query"])),
            "responses": {"200": _json(_obj({"columns": {"type": "array", "items": {"type": "string"}},
                                             "row_count": {"type": "integer"},
                                             "rows": {"type": "array", "items": {"type": "object"}}})),
                          **_errors(400)}}},
        "/human/tasks": {"get": {
            "operationId": "humanTasks", "summary": "Human tasks (default: pending)",
            "parameters": [{"name": "status", "in": "query",
                            "schema": {"enum": ["pending", "answered", "expired", "withdrawn", "all"]}}],
            "responses": {"200": _json(_obj({"tasks": {"type": "array", "items": {"type": "object"}}})),
                          **_errors(400)}}},
        "/human/tasks/{task_id}/answer": {"post": {
            "operationId": "answerHumanTask", "summary": "Answer a human task",
            "parameters": [_path_param("task_id", "task id (or a unique prefix)")],
            "requestBody": _body(_obj({"decision": {"enum": ["value", "approve", "reject"]},
                                       "value": _ANY, "who": {"type": "string"},
                                       "why": {"type": "string"}}, ["decision"])),
            "responses": {"200": _json({"type": "object"}, "The stored answer"),
                          **_errors(400, 404)}}},
    }
    # What every route may answer: a body tornado cannot parse (400), no or a wrong token, or
    # an action Jupyter's Authorizer does not allow (403), the body and rate limits (413, 429).
    for item in paths.values():
        for op in item.values():
            for code, response in _errors(400).items():
                op["responses"].setdefault(code, response)
            op["responses"].setdefault("403", _json(_ERROR, "Not authenticated, or Jupyter's "
                                                     "Authorizer does not allow the action (read, "
                                                     "execute or write on 'functions')"))
    return {
        "openapi": "3.1.0",
        "info": {"title": "functions-nb", "version": "1",
                 "description": "Deploy and invoke sandboxed functions, read their history and "
                                "answer human tasks. Served by a Jupyter Server extension: "
                                "authenticate as for Jupyter (token or cookie); Jupyter's "
                                "Authorizer decides each action on the resource 'functions': "
                                "read (everything that only reads), execute (invoke), write "
                                "(deploy, answering human tasks)."},
        "servers": [{"url": server_url}],
        "security": [{"token": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "token <jupyter token>"}},
            "schemas": {
                "Error": _obj({"error": _obj({"code": {"type": "string"},
                                              "message": {"type": "string"}}, ["code", "message"])},
                              ["error"]),
                "CascadeOptions": _cascade_options(),
                "FunctionInfo": _obj({"name": {"type": "string"}, "version": {"type": "integer"},
                                      "language": {"type": "string"}, "signature": {"type": "object"},
                                      "signature_text": {"type": "string"},
                                      "versions": {"type": "array", "items": {"type": "object"}}},
                                     ["name", "version", "language"]),
            },
        },
    }
