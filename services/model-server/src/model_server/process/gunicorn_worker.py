"""The gunicorn worker of the model server: gunicorn's gevent worker, with three changes.

1. **A response leaves in one write, or not at all.** gunicorn sends a response's head and its
   body with two ``sendall`` calls. A worker that dies between them (killed, OOM, a crash) leaves
   nginx with a head and no body: nginx has already passed the head on to the client, so it
   cannot retry the request on another replica, and the client gets a truncated response.
   Written in one call, the response is either not sent at all (nginx retries it elsewhere) or
   sent whole. The head is held back until the first body bytes and goes out with them; that
   also halves the packets, and nginx's wake-ups, per response.

   A held head must never leave alone when the response fails after it (the app's body
   iterator raises, the greenlet is killed). In gunicorn 27 (``workers/base_async.py``,
   ``http/wsgi.py``) the two cases differ only in how ``handle_request`` ends:

   * complete: ``Response.close()`` ends the body (for a sized or an empty body it touches
     no socket) and ``handle_request`` returns, or raises ``StopIteration`` to close the
     connection after the response. A head still held then is a response without a body
     (HEAD, 204, ``Content-Length: 0``) and is sent;
   * cut short: with the head written, gunicorn calls ``shutdown`` and ``close`` on the socket
     and raises ``StopIteration``; anything else (``OSError``, ``GreenletExit``) propagates.
     ``shutdown``/``close`` and every other way out drop the held head.

   gevent's ``handle_request`` swallows ``GreenletExit`` and ``SystemExit``, which would make a
   killed response look complete, so the worker calls the generic one (``AsyncWorker``'s) and
   ends the connection itself on those.
2. **Fair keep-alive.** A greenlet runs until it blocks: a client whose next request is already
   waiting would be served again and again while the worker's other connections wait. After
   each request the worker yields once, so every other ready connection gets its turn.
3. **A stopping worker closes its idle keep-alive connections at once.** gunicorn's worker
   stops accepting and waits until every connection it holds has ended, up to
   GUNICORN_GRACEFUL_TIMEOUT (25 s): a connection idle between two requests (nginx keeps up to
   32 per worker, for 60 s) holds it that long. Meanwhile its replacement cannot start, and a
   replica with one worker takes no new connection. So when the worker stops being ``alive``
   (SIGTERM, GUNICORN_MAX_REQUESTS, a renewal after GUNICORN_MAX_UNLOADS), every connection
   with no request running and no byte of the next one received is shut down: nginx retries a
   request that meets a closed keep-alive connection on another replica. Requests running
   finish, and their connections close after the response (gunicorn's own rule).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import socket
import termios
from typing import Any

import gevent
from gunicorn.workers import ggevent


class HeadWithBody:
    """A socket whose first ``sendall`` (a response's head) is held and sent with the body's first bytes.

    ``flush`` sends a head still held (a complete response without a body); ``drop``,
    ``shutdown`` and ``close`` discard it (a response cut short). Anything else done with the
    socket (``sendfile``, ``fileno``, ...) sends the held head first, so bytes never leave out
    of order.
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
            if not data:  # an empty first body chunk: the head keeps waiting for real bytes
                return
            data, self._held = self._held + data, None
        self._sock.sendall(data)

    def flush(self) -> None:
        """Send the held head, if nothing came after it (a complete response without a body)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._sock.sendall(held)

    def drop(self) -> None:
        """Forget the held head: its response was cut short, and a head alone must not leave."""
        self._held = None

    def shutdown(self, how: int) -> None:
        self.drop()  # gunicorn's error path after the head was written
        self._sock.shutdown(how)

    def close(self) -> None:
        self.drop()
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self._sock, name)


def _bytes_waiting(sock: Any) -> int:
    """Bytes received on the socket and not yet read (FIONREAD); 0 if it cannot tell."""
    count = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    except OSError:
        return 0
    return count[0]


def _close_if_idle(sock: Any) -> None:
    """Shut a connection down unless the first bytes of its next request are here (then it is answered)."""
    if _bytes_waiting(sock):
        return
    with contextlib.suppress(OSError):  # already closed by the client
        sock.shutdown(socket.SHUT_RDWR)  # its greenlet reads the end and closes it


class GeventWorker(ggevent.GeventWorker):
    """gunicorn's gevent worker; each response in one write (or none), a yield after every request,
    idle connections closed when it stops, and :meth:`renew`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._alive = True
        self._connections: dict[Any, bool] = {}  # open client sockets -> a request is running on it
        super().__init__(*args, **kwargs)

    @property
    def alive(self) -> bool:
        return self._alive

    @alive.setter
    def alive(self, value: bool) -> None:
        self._alive = value
        if not value:
            self._close_idle_connections()

    def renew(self, reason: str) -> None:
        """Stop as GUNICORN_MAX_REQUESTS does: requests running finish, then the master forks a fresh worker."""
        if self.alive:
            self.log.info("Worker renewing: %s (pid: %s)", reason, self.pid)
            self.alive = False

    def _close_idle_connections(self) -> None:
        for sock, busy in list(self._connections.items()):
            if not busy:  # else a request runs: it is answered, then its connection closes
                _close_if_idle(sock)

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        self._connections[client] = False
        try:
            super().handle(listener, client, addr)
        finally:
            self._connections.pop(client, None)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        self._connections[sock] = True  # registered by handle()
        try:
            self._handle_request(listener_name, req, sock, addr)
        finally:
            self._connections[sock] = False
            if not self._alive:  # stopped while this request ran (and was answered keep-alive)
                _close_if_idle(sock)

    def _handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        out = HeadWithBody(sock)
        try:
            # AsyncWorker's, not ggevent's: see the module docstring.
            super(ggevent.GeventWorker, self).handle_request(listener_name, req, out, addr)
        except StopIteration:  # the response is complete (or was shut down): close the connection
            out.flush()
            raise
        except (gevent.GreenletExit, SystemExit):  # killed mid-response; ggevent would go on reading
            out.drop()
            raise StopIteration from None
        except BaseException:
            out.drop()
            raise
        else:
            out.flush()
        finally:
            gevent.sleep(0)  # let every other ready connection run before this one's next request
