"""What every command shares: the CLI state, exit codes, output and error rendering.

Commands get the effective `Settings` and output mode from `cli_state(ctx)` and run
their async body with `run(ctx, coro)`, which maps library errors to exit codes and
one-line messages. This module imports no command, so any module may import it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console

from aether.config import Settings
from aether.errors import (
    AetherError,
    AuthError,
    ConfigError,
    NatsUnavailableError,
    NotFoundError,
    TlsRequiredError,
    ValidationError,
    VersionConflictError,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliState:
    """What the global options decided, shared with every command."""

    config_file: Path | None
    overrides: dict[str, object]
    json: bool
    debug: bool
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The effective settings (file < env < flags), loaded once."""
        if self._settings is None:
            self._settings = Settings.load(self.config_file, overrides=self.overrides)
        return self._settings


def cli_state(ctx: typer.Context) -> CliState:
    """The `CliState` of the running command."""
    root = ctx.find_root()
    state = root.obj
    if not isinstance(state, CliState):  # invoked without the callback (tests of subcommands)
        state = CliState(None, {}, False, False)
        root.obj = state
    return state


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print one line on stderr and exit with `code`."""
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def exit_code_for(exc: BaseException) -> int:
    """The exit code DESIGN.md assigns to a library error."""
    if isinstance(exc, VersionConflictError):
        return EXIT_CONFLICT
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(exc, NatsUnavailableError | AuthError | TlsRequiredError):
        return EXIT_UNREACHABLE
    if isinstance(exc, ValidationError | ConfigError):
        return EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_ERROR
    return EXIT_ERROR


def run(ctx: typer.Context, body: Callable[[], Coroutine[Any, Any, T]] | Awaitable[T]) -> T:
    """Run an async command body; map errors to one line and an exit code; Ctrl-C exits 0."""
    state = cli_state(ctx)
    try:
        if callable(body):
            return asyncio.run(body())  # type: ignore[arg-type]
        return asyncio.run(body)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None
    except typer.Exit:
        raise
    except BrokenPipeError:  # the reader went away (`aether replay x --json | head`)
        _silence_stdout()
        raise typer.Exit(EXIT_OK) from None
    except AetherError as e:
        if state.debug:
            raise
        fail(str(e), exit_code_for(e))
    except OSError as e:
        if state.debug:
            raise
        fail(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    except Exception as e:  # a bug: still one line, the traceback is behind --debug
        if state.debug:
            raise
        fail(f"unexpected {type(e).__name__}: {e} (run with --debug for the traceback)")


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests)
        pass


def settings_or_fail(ctx: typer.Context) -> Settings:
    """The effective settings, or a one-line config error with exit code 2."""
    state = cli_state(ctx)
    try:
        return state.settings
    except AetherError as e:
        if state.debug:
            raise
        fail(str(e), exit_code_for(e))


def print_json(value: object) -> None:
    """Print one JSON document (or one JSON line) on stdout."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()
