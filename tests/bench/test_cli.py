"""``aether bench``: output, documented JSON keys, thresholds, exit codes, clean-up."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from typer.testing import CliRunner

from aether.bench import BenchParams, BenchReport, BenchResult, Machine, Verification
from aether_cli.main import app

# After aether_cli.main (importing a command module first would be a circular import).
bench_cmd = importlib.import_module("aether_cli.commands.bench")

TOP_KEYS = {
    "workload",
    "parameters",
    "machine",
    "events",
    "bytes",
    "elapsed_s",
    "events_per_s",
    "mb_per_s",
    "latency_ms",
    "primary_latency",
    "conflicts",
    "retries",
    "errors",
    "verified",
    "verification",
    "interrupted",
    "extra",
    "kept",
    "thresholds",
    "exit_code",
}
MACHINE_KEYS = {"cpu_count", "python", "implementation", "platform", "nats_server", "aether"}
LATENCY_KEYS = {"count", "p50", "p90", "p99", "p99_9", "max", "mean"}
VERIFICATION_KEYS = {
    "actors",
    "expected",
    "found",
    "missing",
    "duplicates",
    "unexpected",
    "out_of_order",
    "dropped",
    "problems",
    "ok",
}
SMALL = ["--events", "300", "--actors", "10", "--warmup", "10"]


def aether(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def check_document(doc: dict[str, Any], workload: str) -> None:
    """The documented keys with sane figures."""
    assert set(doc) == TOP_KEYS
    assert doc["workload"] == workload
    assert set(doc["machine"]) == MACHINE_KEYS
    assert doc["machine"]["cpu_count"] >= 1
    assert set(doc["verification"]) == VERIFICATION_KEYS
    assert doc["verified"] is True and doc["verification"]["ok"] is True
    assert doc["events"] == 300 and doc["events_per_s"] > 0 and doc["mb_per_s"] > 0
    primary = doc["latency_ms"][doc["primary_latency"]]
    assert set(primary) == LATENCY_KEYS
    assert 0 < primary["p50"] <= primary["p99"] <= primary["max"]
    assert doc["interrupted"] is False
    assert doc["exit_code"] == 0
    for key in ("events", "actors", "payload", "concurrency", "store", "namespace"):
        assert key in doc["parameters"]


@pytest.mark.parametrize("workload", ["append", "replay", "bus", "mixed", "conflict"])
def test_json_document_on_each_store(
    workload: str, store_kind: str, cli_store_args: list[str]
) -> None:
    code, out, err = aether(*cli_store_args, "--json", "bench", workload, *SMALL)
    assert code == 0, err
    doc = orjson.loads(out)
    check_document(doc, workload)
    if workload != "bus":
        assert doc["parameters"]["store"] == store_kind
    assert doc["parameters"]["namespace"].startswith("bench-")
    assert doc["kept"] is False
    if store_kind == "jetstream":
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", doc["machine"]["nats_server"])


@pytest.mark.parametrize("workload", ["append", "replay", "bus", "mixed", "conflict"])
def test_human_output(workload: str) -> None:
    code, out, err = aether("--store", "memory", "bench", workload, *SMALL)
    assert code == 0, err
    assert "events/s" in out and "MB/s" in out
    assert "p99.9" in out
    assert re.search(r"^verified: [\d,]+ (events|deliveries) over [\d,]+ actors", out, re.M), out
    assert "none lost, none duplicated" in out
    if workload == "mixed":
        assert "e2e" in out


def test_done_when_jetstream_append(nats_server: Any) -> None:
    """The issue's command (smaller counts): throughput, percentiles, verified, streams gone."""
    code, out, err = aether(
        *f"bench append --store jetstream --server {nats_server.url} --events 2000 "
        "--actors 100 --concurrency 64 --json".split()
    )
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["verified"] is True
    assert doc["events"] == 2000 and doc["events_per_s"] > 0
    lat = doc["latency_ms"]["append"]
    assert lat["count"] == 2000 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"]
    assert doc["verification"]["expected"] >= 2000
    assert doc["parameters"]["concurrency"] == 64

    async def streams() -> list[str]:
        nc = await nats.connect(nats_server.url)
        try:
            return [s.config.name for s in await nc.jetstream().streams_info()]
        finally:
            await nc.close()

    import asyncio

    assert not [s for s in asyncio.run(streams()) if doc["parameters"]["namespace"] in s]


def test_thresholds_exit_1_when_missed() -> None:
    code, out, err = aether(
        "--store", "memory", "--json", "bench", "append", *SMALL, "--fail-below", "1e12"
    )
    assert code == 1
    doc = orjson.loads(out)
    assert doc["exit_code"] == 1 and doc["verified"] is True
    assert doc["thresholds"]["fail_below"] == 1e12
    assert len(doc["thresholds"]["failures"]) == 1
    assert "threshold missed" in err and "below" in err

    code, out, err = aether("--store", "memory", "bench", "append", *SMALL, "--fail-above-p99", "0")
    assert code == 1
    assert "threshold missed" in err and "p99" in err
    assert "verified:" in out  # the figures are still printed

    code, _, err = aether(
        "--store",
        "memory",
        "bench",
        "append",
        *SMALL,
        "--fail-below",
        "1",
        "--fail-above-p99",
        "60000",
    )
    assert code == 0, err


def test_lost_events_exit_1_whatever_the_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def lossy_bench(settings: Any, params: BenchParams, **kw: Any) -> BenchReport:
        result = BenchResult("append", params.resolved(), events=100, bytes=100, elapsed_s=0.001)
        result.verification = Verification(actors=1, expected=100, found=99, missing=1)
        machine = Machine(2, "3.11", "CPython", "linux", None, "0")
        return BenchReport(result, "memory", "bench-x", False, machine)

    monkeypatch.setattr(bench_cmd, "bench", lossy_bench)
    code, out, err = aether("--store", "memory", "--json", "bench", "append")
    assert code == 1
    doc = orjson.loads(out)
    assert doc["verified"] is False and doc["exit_code"] == 1
    assert "NOT VERIFIED" in err and "1 missing" in err
    code, out, err = aether("--store", "memory", "bench", "append", "--fail-below", "1")
    assert code == 1
    assert "NOT VERIFIED" in out


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "nope"],
        ["bench", "append", "--events", "0"],
        ["bench", "append", "--events", "many"],
        ["bench", "append", "--duration", "soon"],
        ["bench", "append", "--duration", "0s"],
        ["bench", "append", "--batch", "0"],
        ["bench", "bus", "--batch", "10"],
        ["bench", "append", "--fail-below", "-1"],
    ],
)
def test_bad_options_exit_2(args: list[str], tmp_path: Path) -> None:
    code, out, err = aether("--store", "sqlite", *args)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert not (tmp_path / ".aether").exists()  # nothing was written


def test_unreachable_server_exits_5() -> None:
    from tests.servers import free_port

    code, _, err = aether(
        "--store", "jetstream", "--server", f"nats://127.0.0.1:{free_port()}", "bench", "append"
    )
    assert code == 5
    assert err.splitlines()[-1].startswith("error: cannot reach NATS")
    assert "Traceback" not in err and "WARNING" not in err


def test_sqlite_default_is_a_temporary_file_removed_after(tmp_path: Path) -> None:
    code, _, err = aether("--store", "sqlite", "bench", "append", *SMALL)
    assert code == 0, err
    assert not (tmp_path / ".aether").exists()
    code, out, err = aether("--store", "sqlite", "--json", "bench", "append", *SMALL, "--keep")
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["kept"] is True
    assert (tmp_path / ".aether" / "events.db").is_file()
    ns = doc["parameters"]["namespace"]
    code, out, err = aether("--store", "sqlite", "-n", ns, "--json", "versions")
    assert code == 0, err
    assert sum(orjson.loads(out).values()) == 300 + 10  # measured + warm-up


def test_help_documents_the_json_keys_and_exit_codes() -> None:
    for key in TOP_KEYS | MACHINE_KEYS | LATENCY_KEYS | VERIFICATION_KEYS:
        assert key in bench_cmd.HELP, key
    assert "130" in bench_cmd.HELP
    code, out, _ = aether("bench", "--help")
    assert code == 0
    for option in (
        "--events",
        "--duration",
        "--actors",
        "--payload",
        "--concurrency",
        "--batch",
        "--subscribers",
        "--writers",
        "--keep",
        "--fail-below",
        "--fail-above-p99",
    ):
        assert option in out, option


def test_readme_documents_the_json_keys() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start = readme.index("**`aether bench WORKLOAD`**")
    text = readme[start : readme.index("\n\n", readme.index("- From code:", start))]
    for key in TOP_KEYS | MACHINE_KEYS | LATENCY_KEYS | VERIFICATION_KEYS:
        assert f"`{key}`" in text or f"{key}," in text or f", {key}" in text, key
    assert "130" in text


def test_progress_bar_handles_every_report_shape() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress

    from aether.bench import BenchProgress

    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Progress(console=console) as progress:
        bar = bench_cmd._Bar(progress)
        bar(BenchProgress("warmup", 5, 10, 0.1, None))
        bar(BenchProgress("run", 50, None, 1.0, 10.0))
        bar(BenchProgress("run", 70, None, 12.0, 10.0))
        bar(BenchProgress("read_all", 7, None, 0.5, None))
    task = progress.tasks[0]
    assert task.description == "read_all" and task.fields["count"] == "7"
