"""The worker's socket wrapper: a response's head leaves together with its body, in order."""

from __future__ import annotations

from typing import Any

from model_server.gunicorn_worker import HeadWithBody


class RecordingSocket:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def sendall(self, data: bytes) -> None:
        self.calls.append(("sendall", bytes(data)))

    def fileno(self) -> int:
        self.calls.append(("fileno", None))
        return 7


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
