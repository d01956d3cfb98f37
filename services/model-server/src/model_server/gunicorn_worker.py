"""The gunicorn worker of the model server: gunicorn's gevent worker, with two changes.

1. **A response leaves in one write.** gunicorn sends a response's head and its body with two
   ``sendall`` calls. A worker that dies between them (killed, OOM, a crash) leaves nginx with a
   head and no body: nginx has already passed the head on to the client, so it cannot retry the
   request on another replica, and the client gets a truncated response. Written in one call,
   the response is either not sent at all (nginx retries it elsewhere) or sent whole. The head
   is held back until the first body bytes (or the end of the response) and goes out with them;
   that also halves the packets, and nginx's wake-ups, per response.
2. **Fair keep-alive.** A greenlet runs until it blocks: a client whose next request is already
   waiting would be served again and again while the worker's other connections wait. After
   each request the worker yields once, so every other ready connection gets its turn.
"""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.workers import ggevent


class HeadWithBody:
    """A socket whose first ``sendall`` (a response's head) is held and sent with the next one.

    Anything else done with the socket (``sendfile``, ``fileno``, ``shutdown``, ...) sends the
    held head first, so bytes never leave out of order.
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._held: bytes | None = None
        self._first = True

    def sendall(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._held = bytes(data)
            return
        if self._held is not None:
            data, self._held = self._held + data, None
        self._sock.sendall(data)

    def flush(self) -> None:
        """Send the held head, if nothing came after it (a response without a body)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._sock.sendall(held)

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._sock, name)


class GeventWorker(ggevent.GeventWorker):
    """gunicorn's gevent worker; each response in one write, and a yield after every request."""

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        out = HeadWithBody(sock)
        try:
            super().handle_request(listener_name, req, out, addr)
        finally:
            try:
                out.flush()
            finally:
                gevent.sleep(0)  # let every other ready connection run before this one's next request
