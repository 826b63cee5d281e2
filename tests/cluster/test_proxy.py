"""tests/proxy.py itself: forwards, black-holes both ways, resets only the client side."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.proxy import TcpProxy


def test_forward_blackhole_and_client_side_reset() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)
        while data := conn.recv(1024):
            conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    with TcpProxy(listener.getsockname()[1]) as proxy:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        client.sendall(b"ping")
        assert client.recv(1024) == b"ping"
        proxy.blackhole()
        client.sendall(b"lost")
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.recv(1024)
        deadline = time.monotonic() + 5
        while proxy.dropped < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.dropped == 4
        proxy.restore()
        client.settimeout(5)
        client.sendall(b"back")
        assert client.recv(1024) == b"back"
        proxy.reset_clients()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            client.sendall(b"x")
            client.recv(1024)
        # the server's end is still open (half-open): nothing told it
        accepted[0].settimeout(0.3)
        with pytest.raises(TimeoutError):
            accepted[0].recv(1024)
        client.close()
    listener.close()
