"""CLI test helpers: run `aether` in-process (CliRunner) against the temp working dir."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pytest
from typer.testing import CliRunner

from aether_cli import main
from aether_cli.main import app


@dataclass
class Outcome:
    """What one CLI run did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        """stdout parsed as one JSON document."""
        return orjson.loads(self.stdout)

    def json_lines(self) -> list[object]:
        """stdout parsed as JSON lines."""
        return [orjson.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def error_line(self) -> str:
        """The single error line on stderr (asserting there is exactly one, no traceback)."""
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line, got {self.stderr!r}"
        assert lines[0].startswith("error: "), lines[0]
        assert "Traceback" not in self.stderr
        return lines[0]


Cli = Callable[..., Outcome]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("append", "a", "X", input=...)`` runs the app in-process in the temp cwd.

    Human output is rendered 160 columns wide, so tables do not wrap.
    """
    runner = CliRunner()
    monkeypatch.setattr(main.out, "width", 160)

    def invoke(*args: str, input: str | bytes | None = None) -> Outcome:
        result = runner.invoke(app, list(args), input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def versions(cli: Cli) -> Callable[..., dict[str, int]]:
    """``versions()`` -> every actor of the namespace with its latest version."""

    def get(*global_args: str) -> dict[str, int]:
        out = cli(*global_args, "versions", "--json")
        if out.code == 4:  # no store or namespace (read-only commands create none): empty
            return {}
        assert out.code == 0, out.stderr
        return out.json()  # type: ignore[return-value]

    return get
