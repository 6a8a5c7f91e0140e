"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for tests (stdlib only).

It answers every ``POST /v1/chat/completions`` with a canned value: as a call of the output
tool when the request offers tools (pydantic-ai's structured output; the value is wrapped as
``{"response": value}`` when that tool's only parameter is ``response``), else as the message
content (JSON text when ``response_format`` asks for JSON). Every request is kept in
``server.requests`` (path, headers with lower-case names, JSON body) for assertions.

    with OpenAIServer(answer=42) as server:
        model = f"openai-compatible:canned@{server.url}"
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OpenAIServer:
    def __init__(self, answer: Any, *, model: str | None = None) -> None:
        self.answer = answer
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="openai-server",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    # replies -------------------------------------------------------------------------
    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        tools = body.get("tools") or []
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if tools:
            tool = self._output_tool(tools, body.get("tool_choice"))
            params = tool["function"].get("parameters") or {}
            wrapped = set(params.get("properties") or {}) == {"response"}
            args = {"response": self.answer} if wrapped else self.answer
            message["tool_calls"] = [{"id": "call_1", "type": "function", "function": {
                "name": tool["function"]["name"], "arguments": json.dumps(args)}}]
            finish = "tool_calls"
        else:
            json_wanted = (body.get("response_format") or {}).get("type") in ("json_schema", "json_object")
            message["content"] = json.dumps(self.answer) if json_wanted else str(self.answer)
            finish = "stop"
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion",
                "created": int(time.time()), "model": self.model or body.get("model", "canned"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish,
                             "logprobs": None}],
                "usage": {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49}}

    @staticmethod
    def _output_tool(tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
        if isinstance(choice, dict) and choice.get("function", {}).get("name"):
            wanted = choice["function"]["name"]
            return next(t for t in tools if t["function"]["name"] == wanted)
        return next((t for t in tools if t["function"]["name"].startswith("final_result")), tools[0])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                server.requests.append({"path": self.path, "body": body,
                                        "headers": {k.lower(): v for k, v in self.headers.items()}})
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}",
                                                      "type": "invalid_request_error"}})
                self._send(200, server.completion(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        return Handler
