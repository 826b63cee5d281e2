"""What every command shares: the CLI state, exit codes, output and error rendering.

Commands get the effective `Settings` and output mode from `cli_state(ctx)` and run
their async body with `run(ctx, coro)`, which maps library errors to exit codes and
one-line messages. This module imports no command, so any module may import it.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import traceback
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
    PermissionDeniedError,
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

    def override(self, values: dict[str, object]) -> None:
        """Add flag values given after a command (they win); settings load again."""
        self.overrides.update(values)
        self._settings = None


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


def hint_for(exc: BaseException) -> str:
    """What the CLI adds to a library error's message: how to fix it with the CLI (the
    library's messages name settings and fields, never command-line flags)."""
    text = str(exc)
    if isinstance(exc, ConfigError) and text.startswith("nats.servers: no NATS server"):
        return " (use --server, AETHER_NATS_URL or the config file; `aether server` starts one)"
    if isinstance(exc, NatsUnavailableError) and text.endswith("connection refused"):
        return " (is nats-server running? `aether server` starts one)"
    if isinstance(exc, PermissionDeniedError):
        return " (see `aether config permissions NAMESPACE`)"
    if (
        isinstance(exc, NotFoundError)
        and text.startswith("no cluster in namespace")
        and "aether node run" not in text
    ):
        return " (start a node with `aether node run`)"
    return ""


def fail_for(exc: BaseException, debug: bool, code: int | None = None) -> NoReturn:
    """Exit for library error `exc`: one line (plus the CLI's hint) and its exit code;
    with `debug` the traceback first, the exit code unchanged."""
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    fail(str(exc) + hint_for(exc), exit_code_for(exc) if code is None else code)


def strict_int(
    option: str, minimum: int | None = None, maximum: int | None = None
) -> Callable[[object], int]:
    """A typer ``parser`` for an integer option: decimal digits only (``1.0``, ``1e3`` and
    ``0x10`` are refused), range-checked; errors are usage errors (exit 2)."""
    lo = "" if minimum is None else str(minimum)
    hi = "" if maximum is None else str(maximum)
    rng = f"from {lo} to {hi}" if lo and hi else (f">= {lo}" if lo else f"<= {hi}")

    def parse(value: object) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            text = str(value).strip()
            if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):
                shown = text if len(text) <= 40 else text[:37] + "..."
                raise typer.BadParameter(f"{shown!r} is not an integer", param_hint=option)
            n = int(text)
        if (minimum is not None and n < minimum) or (maximum is not None and n > maximum):
            raise typer.BadParameter(f"must be an integer {rng}, got {n}", param_hint=option)
        return n

    return parse


def run(ctx: typer.Context, body: Callable[[], Coroutine[Any, Any, T]] | Awaitable[T]) -> T:
    """Run an async command body; map errors to one line and an exit code; Ctrl-C exits 0.

    With ``--debug`` the traceback is printed first and the exit code stays the same.
    """
    state = cli_state(ctx)
    try:
        if callable(body):
            return asyncio.run(body())
        return asyncio.run(body)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_OK) from None
    except typer.Exit:
        raise
    except BrokenPipeError:  # the reader went away (`aether replay x --json | head`)
        _silence_stdout()
        raise typer.Exit(EXIT_OK) from None
    except AetherError as e:
        fail_for(e, state.debug)
    except OSError as e:
        if state.debug:
            traceback.print_exception(e, file=sys.stderr)
        fail(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    except Exception as e:  # a bug: still one line, the traceback is behind --debug
        if state.debug:
            traceback.print_exception(e, file=sys.stderr)
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
        fail_for(e, state.debug)


def print_json(value: object) -> None:
    """Print one JSON document (or one JSON line) on stdout."""
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()
