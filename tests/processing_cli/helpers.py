"""Subprocesses of ``aether`` (nodes hosting processors, one-shot commands) and waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# the console script (python -m aether_cli.main would import the CLI module twice)
CLI = [str(Path(sys.executable).with_name("aether"))]
FAST = ["--heartbeat", "0.2s", "--lease", "1s", "--node-ttl", "1s"]


def env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: the repository first on PYTHONPATH (so
    ``examples.order_totals`` imports from any cwd), no AETHER_* of the developer."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    e.update(extra)
    return e


def aether(
    *args: str, timeout: float = 60, input: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run one ``aether`` command to completion."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        env=env(**extra),
    )


class Node:
    """An ``aether node run`` subprocess, its output in files (a full pipe cannot stall it)."""

    def __init__(self, args: list[str], logdir: Path, name: str, **extra: str) -> None:
        self.name = name
        self.out_path = logdir / f"{name}.out"
        self.err_path = logdir / f"{name}.err"
        self._out = self.out_path.open("w")
        self._err = self.err_path.open("w")
        self.proc = subprocess.Popen(
            [*CLI, *args], stdout=self._out, stderr=self._err, text=True, env=env(**extra)
        )

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines printed so far."""
        lines = self.out_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def saw(self, event: str) -> bool:
        """Whether the node printed `event` (e.g. ``joined``)."""
        return any(d.get("event") == event for d in self.events())

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        rc = self.proc.wait(timeout)
        self._close()
        return rc

    def kill(self) -> None:
        """SIGKILL (a crash) and reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._close()

    def stderr(self) -> str:
        """What the node wrote on stderr so far."""
        return self.err_path.read_text()

    def _close(self) -> None:
        self._out.close()
        self._err.close()


@contextmanager
def nodes(logdir: Path) -> Iterator[Callable[..., Node]]:
    """Start nodes with the returned function; every one still running is killed after."""
    started: list[Node] = []

    def start(
        url: str, namespace: str, name: str, *options: str, shards: int = 8, **extra: str
    ) -> Node:
        args = ["-s", url, "-n", namespace, "node", "run", "--node-id", name]
        args += ["--shards", str(shards), *FAST, "--json", *options]
        node = Node(args, logdir, name, **extra)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for n in started:
            if n.proc.poll() is None:
                n.kill()


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `check` every 0.1 s; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not reached within {timeout:g}s"
        time.sleep(0.1)


def jsonl(events: list[tuple[str, str, dict[str, Any]]]) -> str:
    """JSON lines for ``aether append --file -`` from (actor, type, data)."""
    return "".join(
        json.dumps({"actor_id": a, "event_type": t, "data": d}) + "\n" for a, t, d in events
    )
