"""The benchmark suite: run every comparison script in `benchmarks/`, summarise the ratios.

Each script (`SCRIPTS`) measures aether and its baseline in one run and exposes
``run(quick=True) -> dict`` (or a ``main(argv)`` that prints one JSON document as its
last line). The suite runs each in a subprocess of its own (a crash or a hang stays
contained; each gets a share of the time budget), collects the figures, prints one
table and rewrites the ``<!-- section:suite -->`` section of ``docs/benchmarks.md``
with the date, the machine and every ratio against its baseline. A script that is
missing, fails or times out is reported as such; the others still run.

Run ``python -m benchmarks --quick`` (the default; ``--full`` for the longer runs).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
MARKER = "<!-- section:suite -->"
RESULT_TAG = "@@AETHER-SUITE-RESULT@@"

SCRIPTS: dict[str, tuple[str, str]] = {
    "store_sqlite": ("SQLite store", "eventsourcing (SQLite)"),
    "store_jetstream": ("JetStream store", "raw nats-py"),
    "bus": ("Event bus", "raw nats-py"),
    "cluster": ("Cluster", "-"),
    "codec": ("Codec and actor hash", "orjson / json"),
    "processing": ("Processors", "raw nats-py pull consumer"),
}
"""Script module -> (what it measures, its default baseline)."""

SHARES: dict[str, float] = {
    "store_sqlite": 1.5,
    "store_jetstream": 1.5,
    "bus": 1.0,
    "cluster": 0.5,
    "codec": 0.5,
    "processing": 2.0,
}
"""Each script's weight in the time budget (1.0 for a script not listed), after how long
its quick run takes on 2 cores."""

TIME_BUDGET = 285.0
"""Seconds for the whole quick suite (the goal is under 5 minutes on 2 cores)."""

_RUNNER = r"""
import importlib, inspect, json, sys
package, name, quick, tag = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
mod = importlib.import_module(f"{package}.{name}")
run = getattr(mod, "run", None)
if callable(run):
    params = inspect.signature(run).parameters
    result = run(quick=quick) if "quick" in params else run()
else:
    import contextlib, io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            mod.main(["--quick"] if quick else ["--full"])
        except SystemExit as e:
            if e.code not in (0, None):
                raise
    text = buf.getvalue()
    sys.stdout.write(text)
    result = None
    for line in reversed(text.strip().splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    if result is None:
        result = {"output": text[-2000:]}
sys.stdout.write("\n" + tag + json.dumps(result, default=str) + "\n")
"""


@dataclass
class Outcome:
    """What running one script gave."""

    name: str
    status: str  # ok | missing | failed | timeout
    seconds: float = 0.0
    result: dict[str, Any] | None = None
    error: str = ""


@dataclass
class Row:
    """One comparison: aether's figure, the baseline's, their ratio."""

    script: str
    case: str
    aether: float | None
    baseline: float | None
    baseline_name: str
    ratio: float | None
    unit: str = "events/s"
    goal: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def script_exists(name: str, package: str = "benchmarks") -> bool:
    """Whether `package.name` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except (ImportError, ValueError):
        return False


def run_script(
    name: str,
    *,
    quick: bool = True,
    timeout: float = 150.0,
    package: str = "benchmarks",
    cwd: Path = ROOT,
) -> Outcome:
    """Run one script in a subprocess and collect its result dict."""
    if not script_exists(name, package):
        return Outcome(name, "missing", error=f"{package}/{name}.py does not exist (yet)")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-c", _RUNNER, package, name, "1" if quick else "0", RESULT_TAG]
    t0 = time.perf_counter()
    # A session of its own: on timeout the whole group goes, nats-servers it started included.
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        return Outcome(name, "timeout", time.perf_counter() - t0, error=f"over {timeout:.0f} s")
    except BaseException:
        _stop_group(proc)
        raise
    seconds = time.perf_counter() - t0
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            try:
                result = json.loads(line[len(RESULT_TAG) :])
            except ValueError:
                break
            if not isinstance(result, dict):
                result = {"result": result}
            return Outcome(name, "ok", seconds, result)
    tail = (stderr.strip() or stdout.strip()).splitlines()
    error = tail[-1] if tail else f"exit code {proc.returncode}"
    return Outcome(name, "failed", seconds, error=error[:300])


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the script's process group, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.communicate(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


# --- reading the scripts' results ----------------------------------------------------------


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _row(script: str, case: str, entry: dict[str, Any], default_baseline: str) -> Row | None:
    aether = _num(entry.get("aether"))
    baseline = _num(entry.get("baseline"))
    baseline_name = str(entry.get("baseline_name") or default_baseline)
    if baseline is None:  # a figure keyed by the peer's name, e.g. {"eventsourcing": 2800}
        skip = {"aether", "ratio", "baseline", "goal", "met", "target", "seconds"}
        for key, value in entry.items():
            if key not in skip and _num(value) is not None:
                baseline, baseline_name = _num(value), key
                break
    ratio = _num(entry.get("ratio"))
    if ratio is None and aether is not None and baseline:
        ratio = aether / baseline
    if aether is None and baseline is None:
        return None
    unit = str(entry.get("unit") or "events/s")
    return Row(script, case, aether, baseline, baseline_name, ratio, unit)


def rows_of(outcome: Outcome) -> list[Row]:
    """The comparisons in a script's result, whatever of the known shapes it has.

    Shapes: ``{"rows": [{"case", "aether", "baseline", "ratio", ...}]}``, or a mapping of
    cases (``"workloads"``, ``"cases"``, ``"results"``) to ``{"aether", <peer>, "ratio"}``,
    optionally with ``"goals": {case: {"target", "met"}}``.
    """
    result = outcome.result or {}
    default = SCRIPTS.get(outcome.name, (outcome.name, "baseline"))[1]
    default = str(result.get("baseline_name") or default)
    rows: list[Row] = []
    listed = result.get("rows")
    if isinstance(listed, list):
        for i, entry in enumerate(listed):
            if isinstance(entry, dict):
                case = str(entry.get("case") or entry.get("name") or f"case {i + 1}")
                row = _row(outcome.name, case, entry, default)
                if row is not None:
                    rows.append(row)
    for key in ("workloads", "cases", "results"):
        mapping = result.get(key)
        if isinstance(mapping, dict):
            for case, entry in mapping.items():
                if isinstance(entry, dict):
                    row = _row(outcome.name, str(case), entry, default)
                    if row is not None:
                        rows.append(row)
    goals = result.get("goals")
    if isinstance(goals, dict):
        for row in rows:
            goal = goals.get(row.case)
            if isinstance(goal, dict) and "met" in goal:
                row.goal = f"{goal.get('target', '')}: {'met' if goal['met'] else 'NOT met'}"
    return rows


# --- machine, table, document --------------------------------------------------------------


def nats_server_version() -> str | None:
    """``nats-server --version`` of the binary the tests use, or None."""
    try:
        from tests.servers import nats_server_binary

        out = subprocess.run(
            [nats_server_binary(), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, RuntimeError, subprocess.SubprocessError, ImportError):
        return None
    m = re.search(r"v?(\d+\.\d+\.\d+\S*)", out)
    return m.group(1) if m else None


def machine() -> dict[str, Any]:
    """CPU count, memory, load average, Python, platform and nats-server version."""
    mem = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = round(pages / 1024**3)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        load = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        load = None
    return {
        "cpu_count": os.cpu_count(),
        "memory_gib": mem,
        "load_average": load,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "nats_server": nats_server_version(),
    }


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit and unit != "events/s":
        return f"{value:,.3g} {unit}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def render_section(
    outcomes: list[Outcome], info: dict[str, Any], when: datetime, quick: bool
) -> str:
    """The Markdown of the suite section (without its marker line)."""
    mode = "--quick" if quick else "--full"
    total = sum(o.seconds for o in outcomes)
    mem = f", {info['memory_gib']} GiB" if info.get("memory_gib") else ""
    nats = f", nats-server {info['nats_server']}" if info.get("nats_server") else ""
    load = info.get("load_average")
    busy = f", load average {load} at the end" if load is not None else ""
    lines = [
        "## Suite summary",
        "",
        f"Generated by `python -m benchmarks {mode}` on {when:%Y-%m-%d %H:%M} UTC "
        f"in {total:.0f} s. Machine: {info.get('cpu_count')} CPUs{mem}, "
        f"Python {info.get('python')}, {info.get('platform')}{nats}{busy}. "
        "Ratio = aether / baseline, both measured in the same run: for rates (events/s) "
        "higher is better, for times (s) lower is better.",
        "",
        "| benchmark | case | aether | baseline | baseline figure | ratio | goal |",
        "|---|---|--:|---|--:|--:|---|",
    ]
    for o in outcomes:
        title = SCRIPTS.get(o.name, (o.name, ""))[0]
        if o.status != "ok":
            lines.append(f"| {title} (`{o.name}.py`) | {o.status}: {o.error} | | | | | |")
            continue
        rows = rows_of(o)
        if not rows:
            lines.append(
                f"| {title} (`{o.name}.py`) | ran in {o.seconds:.0f} s, no ratios | | | | | |"
            )
        for r in rows:
            ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "–"
            lines.append(
                f"| {title} | {r.case} | {_fmt(r.aether, r.unit)} | {r.baseline_name} | "
                f"{_fmt(r.baseline, r.unit)} | {ratio} | {r.goal} |"
            )
    lines.append("")
    lines.append(
        "Figures in events/s unless a unit is given. Each script's own section above has the "
        "details and its exact command; quick runs are short and noisy, `--full` is steadier."
    )
    return "\n".join(lines) + "\n"


def update_doc(section: str, doc: Path = DOC) -> None:
    """Replace the suite section of `doc`: from its marker to the next section marker."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    start = text.find(MARKER)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + MARKER + "\n"
        start = text.find(MARKER)
    body_start = start + len(MARKER)
    nxt = text.find("<!-- section:", body_start)
    end = len(text) if nxt < 0 else nxt
    new = text[:start] + MARKER + "\n\n" + section + ("\n" if nxt >= 0 else "") + text[end:]
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(new, encoding="utf-8")
    tmp.replace(doc)


def print_table(outcomes: list[Outcome]) -> None:
    """A plain-text summary on stdout."""
    print(f"{'benchmark':<16} {'case':<22} {'aether':>12} {'baseline':>12} {'ratio':>7}")
    for o in outcomes:
        if o.status != "ok":
            print(f"{o.name:<16} {o.status}: {o.error}")
            continue
        rows = rows_of(o)
        if not rows:
            print(f"{o.name:<16} ran in {o.seconds:.0f} s, no ratios found")
        for r in rows:
            ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
            print(
                f"{o.name:<16} {r.case[:22]:<22} {_fmt(r.aether, r.unit):>12} "
                f"{_fmt(r.baseline, r.unit):>12} {ratio:>7}"
            )


def run_suite(
    names: list[str] | None = None,
    *,
    quick: bool = True,
    budget: float = TIME_BUDGET,
    package: str = "benchmarks",
    cwd: Path = ROOT,
    log: Any = None,
    min_share: float = 20.0,
) -> list[Outcome]:
    """Run the scripts one after another, each with its share (`SHARES`) of the budget
    that is left, never less than `min_share` seconds."""
    names = list(SCRIPTS) if names is None else names
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    outcomes = []
    deadline = time.monotonic() + budget
    for i, name in enumerate(names):
        left = deadline - time.monotonic()
        still = len(names) - i
        present = [n for n in names[i:] if script_exists(n, package)]
        weight = SHARES.get(name, 1.0)
        weights = sum(SHARES.get(n, 1.0) for n in present) or 1.0
        share = max(min_share, left * weight / weights) if quick else 3600.0
        log(f"suite: {name} ({still} to go, up to {share:.0f} s)")
        outcome = run_script(name, quick=quick, timeout=share, package=package, cwd=cwd)
        log(f"suite: {name}: {outcome.status} in {outcome.seconds:.1f} s {outcome.error}".rstrip())
        outcomes.append(outcome)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks [--quick|--full] [--only NAME ...] [--no-docs] [--json FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short runs, < 5 min in all (default)")
    mode.add_argument("--full", action="store_true", help="the scripts' longer runs")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"among {', '.join(SCRIPTS)}")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    args = parser.parse_args(argv)
    quick = not args.full
    names = args.only or list(SCRIPTS)
    t0 = time.perf_counter()
    outcomes = run_suite(names, quick=quick)
    info = machine()
    when = datetime.now(UTC)
    print_table(outcomes)
    print(f"suite: {time.perf_counter() - t0:.0f} s in all", file=sys.stderr)
    if not args.no_docs:
        update_doc(render_section(outcomes, info, when, quick))
        print(f"suite: rewrote the suite section of {DOC.relative_to(ROOT)}", file=sys.stderr)
    if args.json:
        doc = {
            "date": when.isoformat(),
            "machine": info,
            "quick": quick,
            "scripts": [o.__dict__ for o in outcomes],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    return 0 if all(o.status in ("ok", "missing") for o in outcomes) else 1
