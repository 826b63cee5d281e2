"""A plain TCP listener that speaks just enough NATS to be connected to, and records
every byte a client sends (so a test can prove no ``CONNECT`` with a secret was sent)."""

from __future__ import annotations

import json
import socket
import threading
from types import TracebackType


class FakeNats:
    """``with FakeNats(info) as fake: ...`` then ``fake.received`` (bytes of all clients).

    Sends ``INFO <info>`` on accept, answers ``PING`` with ``PONG`` and never sends TLS.
    """

    def __init__(self, info: dict[str, object] | None = None, port: int = 0) -> None:
        self.info = {
            "server_id": "FAKE",
            "version": "2.12.0",
            "proto": 1,
            "headers": True,
            "max_payload": 1048576,
        } | (info or {})
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._received = bytearray()
        self.connections = 0
        self._stop = False
        self._threads: list[threading.Thread] = []

    @property
    def received(self) -> bytes:
        """Everything clients sent so far."""
        with self._lock:
            return bytes(self._received)

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._client, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            conn.sendall(b"INFO " + json.dumps(self.info).encode() + b"\r\n")
            while not self._stop:
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                with self._lock:
                    self._received += data
                for _ in range(data.count(b"PING\r\n")):
                    conn.sendall(b"PONG\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def __enter__(self) -> FakeNats:
        t = threading.Thread(target=self._serve, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop = True
        self._sock.close()

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self.port}"
