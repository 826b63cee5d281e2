"""Fixtures for the operations tests: servers with auth/TLS configs, the CLI in-process
and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from aether_cli import main
from aether_cli.main import app
from tests.servers import NatsServer


@dataclass
class Outcome:
    """What one CLI run did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        """stdout parsed as one JSON document."""
        return orjson.loads(self.stdout)

    def error_line(self) -> str:
        """The one ``error:`` line on stderr (asserting exactly one and no traceback)."""
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line, got {self.stderr!r}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


Cli = Callable[..., Outcome]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("append", "a", "X", env={...})`` runs the app in-process in the temp cwd."""
    runner = CliRunner()
    monkeypatch.setattr(main.out, "width", 160)

    def invoke(
        *args: str, input: str | bytes | None = None, env: dict[str, str] | None = None
    ) -> Outcome:
        result = runner.invoke(app, list(args), input=input, env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return invoke


AETHER_MAIN = "import sys; from aether_cli.main import main; sys.argv[0] = 'aether'; main()"
"""Python code running the console script (as installed by ``pip install -e .``)."""


def run_aether(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, input: bytes | None = None
) -> Outcome:
    """Run the ``aether`` console script as a subprocess (the environment gets `env`)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AETHER_")}
    full_env.update(env or {})
    full_env["COLUMNS"] = "160"
    res = subprocess.run(
        [sys.executable, "-c", AETHER_MAIN, *args],
        capture_output=True,
        env=full_env,
        timeout=timeout,
        input=input,
    )
    return Outcome(res.returncode, res.stdout.decode(), res.stderr.decode())


ServerFactory = Callable[..., NatsServer]


@pytest.fixture
def make_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """``make_server(extra_config)``: a started nats-server with JetStream and that config."""
    started: list[NatsServer] = []

    def make(extra_config: str = "", name: str = "ops") -> NatsServer:
        base = tmp_path_factory.mktemp("ops-nats")
        server = NatsServer(store_dir=base / "js", name=name, extra_config=extra_config)
        started.append(server)
        server.start()
        return server

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """A directory for secret files (outside the working directory's config)."""
    d = tmp_path / "secrets"
    d.mkdir()
    return d
