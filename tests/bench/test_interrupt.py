"""Ctrl-C (SIGINT) on an ``aether bench`` process: it stops cleanly and prints the figures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    return subprocess.Popen(
        [sys.executable, "-c", "from aether_cli.main import main; main()", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt_when_running(proc: subprocess.Popen[str], after: float = 1.5) -> tuple[str, str]:
    """Wait for the 'running' line (Ctrl-C is handled from then on), run a bit, send SIGINT."""
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith("bench: running"), line
    time.sleep(after)
    assert proc.poll() is None, "the run ended before Ctrl-C"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return out, line + err


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_sigint_json_prints_partial_verified_figures(store: str, tmp_path: Path) -> None:
    proc = start(
        ["--store", store, "--json", "bench", "append", "--duration", "120s", "--warmup", "10"],
        tmp_path,
    )
    try:
        out, err = interrupt_when_running(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err  # EXIT_INTERRUPTED, documented in the help
    assert "Traceback" not in err
    assert "stopping" in err
    doc = orjson.loads(out)
    assert doc["interrupted"] is True
    assert doc["events"] > 0 and doc["events_per_s"] > 0
    assert doc["latency_ms"]["append"]["count"] > 0
    assert doc["verified"] is True  # in-flight saves finished: nothing lost or duplicated
    assert doc["exit_code"] == 130
    assert doc["elapsed_s"] < 60
    assert not (tmp_path / ".aether").exists()  # the temporary SQLite file is removed


def test_sigint_human_output(tmp_path: Path) -> None:
    proc = start(
        ["--store", "memory", "bench", "mixed", "--duration", "120s", "--warmup", "10"], tmp_path
    )
    try:
        out, err = interrupt_when_running(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted: figures measured until Ctrl-C" in out
    assert "events/s" in out and "e2e" in out
    assert "verified:" in out


def test_sigint_jetstream(tmp_path: Path, nats_server: object) -> None:
    url = nats_server.url  # type: ignore[attr-defined]
    proc = start(
        [
            "--json",
            "bench",
            "append",
            "--store",
            "jetstream",
            "--server",
            url,
            "--duration",
            "120s",
            "--warmup",
            "10",
        ],
        tmp_path,
    )
    try:
        out, err = interrupt_when_running(proc, after=2.5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    doc = orjson.loads(out)
    assert doc["interrupted"] is True and doc["verified"] is True and doc["events"] > 0
