"""The gunicorn worker of the model server: gunicorn's gevent worker, with two changes.

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
"""

from __future__ import annotations

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


class GeventWorker(ggevent.GeventWorker):
    """gunicorn's gevent worker; each response in one write (or none), and a yield after every request."""

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
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
