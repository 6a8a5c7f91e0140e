"""Test infrastructure for S3 storage: a real moto server and a fault-injecting TCP proxy.

``MotoServer`` runs ``python -m moto.server`` on 127.0.0.1 (the pattern s3fs's own tests use).
``FaultProxy`` sits between s3fs and moto and can "take the server away" after a chosen
request, without losing moto's in-memory state, so tests can check what survives an outage.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from types import TracebackType
from typing import Any, BinaryIO, Self

HOST = "127.0.0.1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def s3_storage_options(endpoint: str) -> dict[str, Any]:
    """Keyword arguments for ``s3fs.S3FileSystem`` / fsspec that fail fast when ``endpoint`` is down.

    ``retries`` is NOT a constructor argument of s3fs (it would reach ``AioSession`` and raise
    TypeError); it is a class attribute, so set ``fs.retries = 1`` on the instance if wanted.
    """
    return {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "config_kwargs": {
            "retries": {"total_max_attempts": 1, "mode": "standard"},
            "connect_timeout": 2,
            "read_timeout": 5,
        },
        "use_listings_cache": False,
        "skip_instance_cache": True,
    }


def s3_filesystem(endpoint: str) -> Any:
    """A fresh ``s3fs.S3FileSystem`` for ``endpoint`` with ``s3_storage_options`` and ``retries = 1``."""
    import s3fs

    fs = s3fs.S3FileSystem(**s3_storage_options(endpoint))
    fs.retries = 1  # s3fs-level retries of timeouts/HTTPClientError (default 5); not an __init__ argument
    return fs


class MotoServer:
    """A moto S3 server subprocess on 127.0.0.1; usable as a context manager."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """Base URL of the server."""
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        """Start the server and wait until its port accepts connections."""
        cmd = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited early with code {self._proc.returncode}: {cmd}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto server did not accept connections on {self.endpoint} within {timeout}s")

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit) and wait for it."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def reset(self) -> None:
        """Wipe all moto state (buckets and objects)."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        urllib.request.urlopen(req, timeout=10).close()

    def client(self) -> Any:
        """A boto3 S3 client talking directly to the server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **CREDENTIALS)

    def make_bucket(self, name: str) -> None:
        """Create bucket ``name``."""
        self.client().create_bucket(Bucket=name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


Head = tuple[str, list[bytes], dict[str, str]]


def _read_exact(rfile: BinaryIO, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) != n:
        raise ConnectionError("connection closed mid-body")
    return data


def _read_head(rfile: BinaryIO) -> Head | None:
    """Read a start line and headers; None on clean EOF before the start line."""
    first = rfile.readline(65537)
    if not first:
        return None
    raw, headers = [first], {}
    while True:
        line = rfile.readline(65537)
        if not line:
            raise ConnectionError("connection closed mid-headers")
        raw.append(line)
        if line in (b"\r\n", b"\n"):
            return first.decode("latin-1").rstrip("\r\n"), raw, headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()


def _read_body(rfile: BinaryIO, headers: dict[str, str], out: list[bytes]) -> None:
    """Append a chunked or Content-Length body, verbatim, to ``out``."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = rfile.readline(65537)
            out.append(size_line)
            size = int(size_line.split(b";")[0].strip() or b"x", 16)
            if size == 0:
                break
            out.append(_read_exact(rfile, size + 2))
        while (line := rfile.readline(65537)) not in (b"\r\n", b"\n", b""):  # trailers
            out.append(line)
        out.append(b"\r\n")
    elif "content-length" in headers:
        out.append(_read_exact(rfile, int(headers["content-length"])))


class FaultProxy:
    """Threaded HTTP-aware TCP proxy on 127.0.0.1 that can simulate the upstream going away.

    Requests are parsed one at a time per connection (keep-alive aware), so each request line is
    seen. While down, open connections are shut and new ones are reset right after accept.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._down = False
        self._predicate: Callable[[str], bool] | None = None
        self._socks: set[socket.socket] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        threading.Thread(target=self._accept_loop, name="FaultProxy-accept", daemon=True).start()

    @property
    def endpoint(self) -> str:
        """Base URL clients should use instead of the target's."""
        return f"http://{HOST}:{self.port}"

    @property
    def is_down(self) -> bool:
        """Whether the proxy is currently refusing traffic."""
        return self._down

    def go_down_after(self, predicate: Callable[[str], bool]) -> None:
        """Relay the first request whose request line matches ``predicate``, then go down."""
        with self._lock:
            self._predicate = predicate

    def down(self) -> None:
        """Go down now: shut all open connections; new ones are reset until ``up()``."""
        with self._lock:
            self._down = True
            self._predicate = None
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def up(self) -> None:
        """Come back: forward new connections again."""
        with self._lock:
            self._down = False

    def close(self) -> None:
        """Stop listening and drop all connections."""
        self._closed.set()
        self.down()
        self._listener.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._down:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()  # RST: the client sees "connection reset"
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.add(s)

    def _serve(self, client: socket.socket) -> None:
        """Relay requests of one client connection, one request/response at a time."""
        upstream: socket.socket | None = None
        self._track(client)
        crf = client.makefile("rb")
        urf: BinaryIO | None = None
        try:
            while True:
                head = _read_head(crf)
                if head is None:
                    return
                line, raw, headers = head
                if headers.get("expect", "").lower() == "100-continue":
                    raw = [h for h in raw if not h.lower().startswith(b"expect:")]
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                _read_body(crf, headers, raw)
                with self._lock:
                    if self._down:
                        return
                    self.requests.append(line)
                    trigger = self._predicate is not None and self._predicate(line)
                    if trigger:
                        self._predicate = None
                if upstream is None:
                    upstream = socket.create_connection(self.target)
                    self._track(upstream)
                    urf = upstream.makefile("rb")
                assert urf is not None
                upstream.sendall(b"".join(raw))
                response, close = self._read_response(urf, line.split(" ", 1)[0])
                if trigger:
                    with self._lock:
                        self._down = True
                client.sendall(response)
                if trigger:
                    self.down()
                    return
                if close or "close" in headers.get("connection", "").lower():
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._socks.discard(client)
                if upstream is not None:
                    self._socks.discard(upstream)
            for f in (crf, urf, client, upstream):
                if f is not None:
                    f.close()

    @staticmethod
    def _read_response(rfile: BinaryIO, method: str) -> tuple[bytes, bool]:
        """Read one full response; return its bytes and whether the connection must close."""
        out: list[bytes] = []
        while True:
            head = _read_head(rfile)
            if head is None:
                raise ConnectionError("upstream closed before responding")
            status_line, raw, headers = head
            out += raw
            status = int(status_line.split()[1])
            if status >= 200 or status == 101:
                break
        conn = headers.get("connection", "").lower()
        close = "close" in conn or (status_line.startswith("HTTP/1.0") and "keep-alive" not in conn)
        no_body = method == "HEAD" or status < 200 or status in (204, 304)
        if not no_body:
            if "chunked" in headers.get("transfer-encoding", "").lower() or "content-length" in headers:
                _read_body(rfile, headers, out)
            else:
                out.append(rfile.read())  # body delimited by connection close
                close = True
        return b"".join(out), close
