"""``aether bench WORKLOAD``: throughput and latency of a store or bus, like ``nats bench``.

The engine is `aether.bench`; this module parses options, shows a progress bar, renders
the figures as a table or one JSON document, and turns the outcome into an exit code.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aether.bench import (
    PRIMARY_LATENCY,
    WORKLOADS,
    BenchParams,
    BenchProgress,
    BenchReport,
    bench,
    threshold_failures,
)
from aether.config import parse_duration
from aether.errors import ConfigError, ValidationError
from aether_cli.context import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    cli_state,
    err,
    fail,
    out,
    print_json,
    run,
    settings_or_fail,
)

EXIT_INTERRUPTED = 130
"""Exit code of a run stopped by Ctrl-C (SIGINT) that lost nothing: 128 + SIGINT."""

HELP = """Load-test a store or the bus: throughput (events/s, MB/s) and latency percentiles.

WORKLOAD is one of: append (N events over A actors, C concurrent writers, one per save
or --batch K), replay (write, then read back every actor; --actors 1 replays one actor),
bus (one publisher, S subscribers), mixed (C writers and a store watch together; latency
append -> delivery), conflict (W writers racing on the same A actors; conflicts and
retries counted).

It runs in a throw-away namespace bench-<random> removed afterwards unless --keep
(SQLite: a temporary file beside the configured one; JetStream: its streams are deleted).
A namespace given with -n is used as is and kept. A warm-up runs first and is excluded.
After the run it verifies what it wrote or delivered (each event once, versions 1..n).

--json prints one document with the keys: workload, parameters, machine {cpu_count,
python, implementation, platform, nats_server, aether}, events, bytes, elapsed_s,
events_per_s, mb_per_s, latency_ms {KIND: {count, p50, p90, p99, p99_9, max, mean}},
primary_latency, conflicts, retries, errors, verified, verification {actors, expected,
found, missing, duplicates, unexpected, out_of_order, dropped, problems, ok},
interrupted, extra, kept, thresholds {fail_below, fail_above_p99_ms, failures}, exit_code.

Exit codes: 0 ok; 1 something lost or duplicated (whatever the speed), an error, or a
threshold missed; 2 bad option; 5 NATS unreachable; 130 stopped by Ctrl-C (figures so far
are printed; a second Ctrl-C aborts at once).
"""


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = parse_duration(value, "--duration")
    except ConfigError as e:
        fail(str(e), EXIT_USAGE)
    if seconds <= 0:
        fail("--duration: must be greater than 0", EXIT_USAGE)
    return seconds


class _Bar:
    """Progress callback driving a rich progress bar on stderr."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=None, count="")

    def __call__(self, p: BenchProgress) -> None:
        update = self.progress.update
        if p.total:
            count = f"{p.done:,}/{p.total:,}"
            update(self.task, description=p.phase, total=p.total, completed=p.done, count=count)
        elif p.duration:
            count = f"{p.done:,} ({p.elapsed:.0f}/{p.duration:.0f} s)"
            done = min(p.elapsed, p.duration)
            update(self.task, description=p.phase, total=p.duration, completed=done, count=count)
        else:
            update(
                self.task, description=p.phase, total=None, completed=p.done, count=f"{p.done:,}"
            )


async def _run_with_signals(
    coro_fn: Callable[[], Awaitable[BenchReport]],
    stop: asyncio.Event,
    announce: str | None = None,
) -> BenchReport:
    """Run `coro_fn()`; the first SIGINT sets `stop`, the second cancels the run.

    `announce` is printed on stderr once Ctrl-C is handled (scripts may wait for it).
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    presses = 0

    def on_sigint() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            stop.set()
            err.print("stopping: finishing operations in flight (Ctrl-C again to abort)")
        elif task is not None:
            task.cancel()

    installed = True
    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
        installed = False
    if announce:
        err.print(announce, markup=False)
    try:
        return await coro_fn()
    except asyncio.CancelledError:
        err.print("error: aborted", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


def _fmt(x: float) -> str:
    return f"{x:,.3f}" if x < 100 else f"{x:,.1f}"


def _render(report: BenchReport, failures: list[str]) -> None:
    r = report.result
    d = report.to_dict()
    target = (report.bus and f"bus {report.bus}") or f"store {report.store}"
    where = "kept" if report.kept else "removed"
    out.print(
        f"aether bench {r.workload} · {target} · namespace {report.namespace} ({where})",
        markup=False,
    )
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row("events", f"{r.events:,}")
    summary.add_row("elapsed", f"{r.elapsed_s:.3f} s")
    summary.add_row("throughput", f"{r.events_per_s:,.0f} events/s")
    summary.add_row("bandwidth", f"{r.mb_per_s:,.2f} MB/s")
    if r.workload == "conflict":
        summary.add_row("conflicts", f"{r.conflicts:,}")
        summary.add_row("retries", f"{r.retries:,}")
    elif r.retries:
        summary.add_row("retries", f"{r.retries:,}")
    for key, value in r.extra.items():
        summary.add_row(
            key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value)
        )
    out.print(summary)
    lat = Table(title="latency (ms)", title_justify="left")
    lat.add_column("kind")
    for col in ("count", "p50", "p90", "p99", "p99.9", "max"):
        lat.add_column(col, justify="right")
    for kind, s in r.latency.items():
        mark = " *" if kind == PRIMARY_LATENCY[r.workload] else ""
        lat.add_row(
            kind + mark,
            f"{s.count:,}",
            _fmt(s.p50),
            _fmt(s.p90),
            _fmt(s.p99),
            _fmt(s.p99_9),
            _fmt(s.max),
        )
    out.print(lat)
    m = d["machine"]
    out.print(
        f"machine: {m['cpu_count']} CPUs, Python {m['python']}"
        + (f", nats-server {m['nats_server']}" if m["nats_server"] else ""),
        markup=False,
    )
    out.print(_verification_line(report), markup=False)
    if r.interrupted:
        out.print("interrupted: figures measured until Ctrl-C", markup=False)
    for f in failures:
        err.print(f"error: threshold missed: {f}", markup=False)


def _verification_line(report: BenchReport) -> str:
    r = report.result
    v = r.verification
    if r.verified:
        what = "deliveries" if r.workload == "bus" else "events"
        return f"verified: {v.found:,} {what} over {v.actors:,} actors, none lost, none duplicated"
    parts = [
        f"{n} {label}"
        for n, label in (
            (v.missing, "missing"),
            (v.duplicates, "duplicated"),
            (v.unexpected, "unexpected"),
            (v.out_of_order, "out of order"),
            (v.dropped, "dropped"),
            (r.errors, "errors"),
        )
        if n
    ]
    detail = "; ".join(v.problems[:3])
    return "NOT VERIFIED: " + (", ".join(parts) or "problems") + (f" ({detail})" if detail else "")


def bench_command(
    ctx: typer.Context,
    workload: Annotated[str, typer.Argument(help=f"One of: {', '.join(WORKLOADS)}.")],
    events: Annotated[
        int | None, typer.Option("--events", help="Events to measure (default 10000).")
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration", help="Run for this long, e.g. 10s (with --events: whichever first)."
        ),
    ] = None,
    actors: Annotated[
        int | None, typer.Option("--actors", help="Actors written (default 100; conflict: 4).")
    ] = None,
    payload: Annotated[int, typer.Option("--payload", help="Bytes of event data.")] = 200,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", help="Concurrent writers (append, mixed) or readers (replay)."
        ),
    ] = 16,
    batch: Annotated[
        int, typer.Option("--batch", help="Events per atomic save (append, mixed).")
    ] = 1,
    subscribers: Annotated[int, typer.Option("--subscribers", help="Bus subscribers.")] = 1,
    writers: Annotated[int, typer.Option("--writers", help="Racing writers (conflict).")] = 8,
    warmup: Annotated[
        int | None,
        typer.Option("--warmup", help="Warm-up events, excluded (default: 5%, at most 1000)."),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the namespace and its events.")
    ] = False,
    fail_below: Annotated[
        float | None,
        typer.Option("--fail-below", metavar="EVENTS_PER_S", help="Exit 1 below this throughput."),
    ] = None,
    fail_above_p99: Annotated[
        float | None,
        typer.Option("--fail-above-p99", metavar="MS", help="Exit 1 when p99 latency is above MS."),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="memory | sqlite | jetstream (same as the global option)."),
    ] = None,
    server: Annotated[
        list[str] | None,
        typer.Option("--server", "-s", help="NATS URL (same as the global option)."),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Run in this namespace and keep it."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON document (same as the global option).")
    ] = False,
    metrics_addr: Annotated[
        str | None, typer.Option("--metrics-addr", help="Serve Prometheus /metrics at HOST:PORT.")
    ] = None,
) -> None:
    state = cli_state(ctx)
    # The global options may also follow the workload: `aether bench append --store ...`.
    local = {"store": store, "namespace": namespace, "nats.servers": list(server or []) or None}
    if any(v is not None for v in local.values()):
        state.overrides.update({k: v for k, v in local.items() if v is not None})
        state._settings = None
    if json_output:
        state.json = True
    if workload not in WORKLOADS:
        fail(f"workload: must be one of {', '.join(WORKLOADS)}; got {workload!r}", EXIT_USAGE)
    params = BenchParams(
        workload=workload,
        events=events,
        duration=_duration(duration),
        actors=actors,
        payload=payload,
        concurrency=concurrency,
        batch=batch,
        subscribers=subscribers,
        writers=writers,
        warmup=warmup,
    )
    try:
        params = params.resolved()
    except ValidationError as e:
        fail(f"--{e.field}: {e.rule}", EXIT_USAGE)
    for name, value in (("--fail-below", fail_below), ("--fail-above-p99", fail_above_p99)):
        if value is not None and value < 0:
            fail(f"{name}: must be >= 0", EXIT_USAGE)
    settings = settings_or_fail(ctx)
    show_bar = err.is_terminal
    if metrics_addr is not None:
        from aether import observability as obs
        from aether.observability.serve import parse_addr

        try:
            parse_addr(metrics_addr), obs.instrument_factories()
        except ConfigError as e:
            fail(f"--metrics-addr: {e}", EXIT_USAGE)

    def serve() -> Any:
        """The /metrics server, served from the bench's own loop (see serve_metrics)."""
        if metrics_addr is None:
            return None
        from aether import observability as obs

        try:
            return obs.serve_metrics(metrics_addr)
        except (ConfigError, OSError) as e:
            fail(f"--metrics-addr: {e}", EXIT_USAGE if isinstance(e, ConfigError) else EXIT_ERROR)

    async def body() -> BenchReport:
        server = serve()
        try:
            return await measure()
        finally:
            if server is not None:
                server.close()

    async def measure() -> BenchReport:
        stop = asyncio.Event()
        if not show_bar:
            if workload == "bus":
                target = "the NATS bus" if settings.nats.servers else "the local bus"
            else:
                target = f"the {settings.resolved_store} store"
            announce = (
                f"bench: running {workload} on {target} "
                "(Ctrl-C stops and prints the figures so far)"
            )
            return await _run_with_signals(
                lambda: bench(settings, params, keep=keep, stop=stop), stop, announce
            )
        with Progress(
            TextColumn("{task.description:<8}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            bar = _Bar(progress)
            return await _run_with_signals(
                lambda: bench(settings, params, keep=keep, progress=bar, stop=stop), stop
            )

    report = run(ctx, body)
    failures = (
        []
        if report.result.interrupted
        else threshold_failures(report.result, fail_below=fail_below, fail_above_p99=fail_above_p99)
    )
    if not report.result.verified or failures:
        code = EXIT_ERROR
    elif report.result.interrupted:
        code = EXIT_INTERRUPTED
    else:
        code = EXIT_OK
    if state.json:
        doc = report.to_dict()
        doc["thresholds"] = {
            "fail_below": fail_below,
            "fail_above_p99_ms": fail_above_p99,
            "failures": failures,
        }
        doc["exit_code"] = code
        print_json(doc)
        for f in failures:
            err.print(f"error: threshold missed: {f}", markup=False)
    else:
        _render(report, failures)
    if not report.result.verified:
        err.print(f"error: {_verification_line(report)}", markup=False)
    if code != EXIT_OK:
        raise typer.Exit(code)


bench_command.__doc__ = HELP


def register(app: typer.Typer) -> None:
    """Add ``aether bench`` to the app."""
    app.command("bench", help=HELP)(bench_command)
