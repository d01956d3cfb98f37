"""The worker's socket wrapper: a response's head leaves together with its body, in order, or not at all.

First with a recording fake socket, then under real gunicorn with an app whose body fails after
its head was written: the client must see either a whole response or none, never a head alone.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gunicorn.workers import base_async
from model_server.process.gunicorn_worker import GeventWorker, HeadWithBody

from ..helpers import free_port


class RecordingSocket:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def sendall(self, data: bytes) -> None:
        self.calls.append(("sendall", bytes(data)))

    def fileno(self) -> int:
        self.calls.append(("fileno", None))
        return 7

    def shutdown(self, how: int) -> None:
        self.calls.append(("shutdown", how))

    def close(self) -> None:
        self.calls.append(("close", None))


HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"


def test_head_and_body_leave_in_one_sendall() -> None:
    sock = RecordingSocket()
    out = HeadWithBody(sock)
    out.sendall(HEAD)
    assert sock.calls == [], "the head waits for the body"
    out.sendall(b"hello")
    out.flush()
    assert sock.calls == [("sendall", HEAD + b"hello")]


def test_a_response_without_body_is_sent_by_flush() -> None:
    sock = RecordingSocket()
    out = HeadWithBody(sock)
    out.sendall(HEAD)
    out.flush()
    out.flush()
    assert sock.calls == [("sendall", HEAD)]


def test_later_body_chunks_pass_straight_through() -> None:
    sock = RecordingSocket()
    out = HeadWithBody(sock)
    for chunk in (HEAD, b"ab", b"cd", memoryview(b"e")):
        out.sendall(chunk)
    assert sock.calls == [("sendall", HEAD + b"ab"), ("sendall", b"cd"), ("sendall", b"e")]


def test_any_other_use_of_the_socket_sends_the_held_head_first() -> None:
    # e.g. gunicorn's sendfile path: head, then the file straight from the descriptor.
    sock = RecordingSocket()
    out = HeadWithBody(sock)
    out.sendall(HEAD)
    assert out.fileno() == 7
    assert sock.calls == [("sendall", HEAD), ("fileno", None)]


def test_flush_with_nothing_held_sends_nothing() -> None:
    sock = RecordingSocket()
    HeadWithBody(sock).flush()
    assert sock.calls == []


def test_an_empty_first_body_write_keeps_the_head_held() -> None:
    # gunicorn writes an empty first chunk of a sized body as sendall(b"").
    sock = RecordingSocket()
    out = HeadWithBody(sock)
    out.sendall(HEAD)
    out.sendall(b"")
    assert sock.calls == []
    out.sendall(b"hello")
    assert sock.calls == [("sendall", HEAD + b"hello")]


def test_gunicorns_error_path_drops_a_held_head() -> None:
    # base_async.handle_request, on an error after the head was written: shutdown, then close.
    sock = RecordingSocket()
    out = HeadWithBody(sock)
    out.sendall(HEAD)
    out.shutdown(socket.SHUT_RDWR)
    out.close()
    out.flush()
    assert sock.calls == [("shutdown", socket.SHUT_RDWR), ("close", None)], "no head without its body"


def test_close_alone_drops_a_held_head() -> None:
    sock = RecordingSocket()
    out = HeadWithBody(sock)
    out.sendall(HEAD)
    out.close()
    assert sock.calls == [("close", None)]


def _returns(out: HeadWithBody) -> None:
    out.sendall(HEAD)


def _closes_connection(out: HeadWithBody) -> None:  # a complete response with "Connection: close"
    out.sendall(HEAD)
    raise StopIteration


def _raises(exc: BaseException) -> Any:
    def handler(out: HeadWithBody) -> None:
        out.sendall(HEAD)
        raise exc

    return handler


@pytest.mark.parametrize(
    ("handler", "raised", "sent"),
    [
        (_returns, None, [("sendall", HEAD)]),
        (_closes_connection, StopIteration, [("sendall", HEAD)]),
        (_raises(OSError("the body's file failed")), OSError, []),
        (_raises(RuntimeError("before gunicorn's own handling")), RuntimeError, []),
        (_raises(gevent.GreenletExit()), StopIteration, []),  # killed: the connection ends
        (_raises(SystemExit()), StopIteration, []),
    ],
    ids=["complete", "complete-close", "oserror", "error", "greenletexit", "systemexit"],
)
def test_the_worker_sends_a_held_head_only_after_a_complete_response(
    monkeypatch: pytest.MonkeyPatch, handler: Any, raised: type[BaseException] | None, sent: list
) -> None:
    # A response with no body (HEAD, 204, Content-Length: 0) is complete when gunicorn's
    # handle_request returns (or ends the connection); any other way out of it cuts it short.
    monkeypatch.setattr(
        base_async.AsyncWorker, "handle_request", lambda _self, _listener, _req, out, _addr: handler(out)
    )
    sock = RecordingSocket()
    worker = GeventWorker.__new__(GeventWorker)  # handle_request needs no configuration here
    worker._alive, worker._connections = True, {sock: False}  # what __init__ and handle() set

    if raised is None:
        worker.handle_request("listener", object(), sock, ("127.0.0.1", 1))
    else:
        with pytest.raises(raised):
            worker.handle_request("listener", object(), sock, ("127.0.0.1", 1))

    assert sock.calls == sent


# --- under real gunicorn ------------------------------------------------------------------------

APP = textwrap.dedent(
    """
    import gevent


    def app(environ, start_response):
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/ok":
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"]
        if path == "/empty":
            start_response("200 OK", [("Content-Length", "0")])
            return []
        if path == "/no-content":
            start_response("204 No Content", [])
            return []
        failure = {"/fails": RuntimeError("the body failed"), "/killed": gevent.GreenletExit()}[path]
        sized = environ.get("QUERY_STRING") == "sized"
        start_response("200 OK", [("Content-Type", "text/plain")] + ([("Content-Length", "10")] if sized else []))

        def body():
            yield b""  # gunicorn writes the head now; no body byte has been written
            raise failure

        return body()
    """
)


@pytest.fixture(scope="module")
def plain_gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """gunicorn with the model server's worker class, serving the small app above."""
    directory = tmp_path_factory.mktemp("worker")
    (directory / "failing_app.py").write_text(APP)
    port = free_port()
    log = (directory / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--worker-class", "model_server.process.gunicorn_worker.GeventWorker", "--keep-alive", "30",
         "--chdir", str(directory), "failing_app:app"],
        stdout=log, stderr=subprocess.STDOUT, cwd=directory,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            assert proc.poll() is None, (directory / "gunicorn.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _answers(port: int) -> bool:
    try:
        return exchange(port, "GET", "/ok").startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def exchange(port: int, method: str, path: str) -> bytes:
    """Every byte the server sends for one request, until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def keep_alive_exchange(port: int, path: str) -> bytes:
    """As :func:`exchange` on a keep-alive connection: what arrives before the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the connection stays open after {received!r}")
    return received


@pytest.mark.parametrize("path", ["/fails", "/fails?sized", "/killed", "/killed?sized"])
def test_a_body_that_fails_after_its_head_sends_nothing(plain_gunicorn: int, path: str) -> None:
    # nginx may retry a request that got no bytes on another replica; a head alone it must pass on.
    assert keep_alive_exchange(plain_gunicorn, path) == b""


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/ok", b"200"), ("HEAD", "/ok", b"200"), ("GET", "/empty", b"200"), ("GET", "/no-content", b"204")],
)
def test_complete_responses_still_go_out(plain_gunicorn: int, method: str, path: str, status: bytes) -> None:
    response = exchange(plain_gunicorn, method, path)
    head, separator, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 " + status), response
    assert separator
    assert body == (b"ok" if (method, path) == ("GET", "/ok") else b"")
