"""``python -m benchmarks``: result shapes, the docs section rewrite, missing/broken scripts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.suite import (
    MARKER,
    ROOT,
    Outcome,
    render_section,
    rows_of,
    run_suite,
    update_doc,
)

SQLITE_SHAPE = {
    "workloads": {
        "sequential": {"aether": 5000, "eventsourcing": 2500, "ratio": 2.0},
        "replay": {"aether": 90000, "eventsourcing": 30000, "ratio": 3.0},
    },
    "goals": {"sequential": {"target": "ratio >= 1.8", "value": 2.0, "met": True}},
}
JETSTREAM_SHAPE = {
    "rows": [
        {"case": "sequential", "aether": 3600, "baseline": 4000, "ratio": 0.9},
        {"case": "replay", "aether": None, "baseline": 150000, "ratio": None},
    ]
}


def test_rows_of_both_result_shapes() -> None:
    rows = rows_of(Outcome("store_sqlite", "ok", 1.0, SQLITE_SHAPE))
    assert [(r.case, r.aether, r.baseline, r.baseline_name, r.ratio) for r in rows] == [
        ("sequential", 5000, 2500, "eventsourcing", 2.0),
        ("replay", 90000, 30000, "eventsourcing", 3.0),
    ]
    assert rows[0].goal == "ratio >= 1.8: met" and rows[1].goal == ""
    rows = rows_of(Outcome("store_jetstream", "ok", 1.0, JETSTREAM_SHAPE))
    assert [(r.case, r.ratio, r.baseline_name) for r in rows] == [
        ("sequential", 0.9, "raw nats-py"),
        ("replay", None, "raw nats-py"),
    ]
    computed = rows_of(
        Outcome("x", "ok", 1.0, {"rows": [{"case": "a", "aether": 3, "baseline": 2}]})
    )
    assert computed[0].ratio == 1.5
    assert rows_of(Outcome("x", "ok", 1.0, {"nothing": 1})) == []


def test_section_is_rewritten_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\n<!-- section:sqlite -->\nsqlite figures\n\n"
        f"{MARKER}\nold suite table\n\n<!-- section:cluster -->\ncluster figures\n"
    )
    outcomes = [
        Outcome("store_sqlite", "ok", 3.0, SQLITE_SHAPE),
        Outcome("store_jetstream", "ok", 4.0, JETSTREAM_SHAPE),
        Outcome("bus", "missing", error="benchmarks/bus.py does not exist (yet)"),
        Outcome("cluster", "failed", 1.0, error="RuntimeError: boom"),
    ]
    info = {
        "cpu_count": 2,
        "memory_gib": 24,
        "python": "3.11.7",
        "platform": "Linux",
        "nats_server": "2.15.1",
    }
    section = render_section(outcomes, info, datetime(2026, 11, 27, 0, 30, tzinfo=UTC), True)
    for _ in range(2):  # idempotent: a second run replaces, never appends
        update_doc(section, doc)
        text = doc.read_text()
        assert text.count(MARKER) == 1 and text.count("## Suite summary") == 1
        assert "old suite table" not in text
        assert "sqlite figures" in text and text.rstrip().endswith("cluster figures")
        assert (
            text.index("<!-- section:sqlite -->")
            < text.index(MARKER)
            < text.index("cluster figures")
        )
    assert "2026-11-27 00:30 UTC" in text
    assert "2 CPUs, 24 GiB, Python 3.11.7" in text and "nats-server 2.15.1" in text
    assert (
        "| SQLite store | sequential | 5,000 | eventsourcing | 2,500 | 2.00× | ratio >= 1.8: met |"
        in text
    )
    assert "| JetStream store | sequential | 3,600 | raw nats-py | 4,000 | 0.90× |" in text
    assert "missing: benchmarks/bus.py does not exist (yet)" in text
    assert "failed: RuntimeError: boom" in text


def test_missing_doc_or_marker_gets_the_section(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    doc.write_text("# Benchmarks\n\nintro\n")
    update_doc("## Suite summary\n\nx\n", doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nintro\n") and MARKER in text and text.endswith("x\n")


def test_suite_tolerates_missing_failing_and_main_only_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "fakebench_suite"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(
        textwrap.dedent(
            """
            def run(quick=True):
                return {"rows": [{"case": "c", "aether": 10.0, "baseline": 5.0, "quick": quick}]}
            """
        )
    )
    (pkg / "broken.py").write_text("def run(quick=True):\n    raise RuntimeError('boom')\n")
    (pkg / "mainonly.py").write_text(
        "import json\ndef main(argv):\n    print('table')\n"
        "    print(json.dumps({'workloads': {'w': {'aether': 2, 'peer': 4}}}))\n"
    )
    (pkg / "slow.py").write_text("import time\ndef run(quick=True):\n    time.sleep(60)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    outcomes = run_suite(
        ["slow", "good", "absent", "broken", "mainonly"],
        budget=20,  # 5 s for each of the 4 present scripts; slow would sleep 60 s
        package="fakebench_suite",
        cwd=tmp_path,
        log=lambda _text: None,
        min_share=2,
    )
    status = {o.name: o.status for o in outcomes}
    assert status == {
        "good": "ok",
        "absent": "missing",
        "broken": "failed",
        "mainonly": "ok",
        "slow": "timeout",
    }
    assert outcomes[0].seconds < 15
    assert rows_of(outcomes[1])[0].ratio == 2.0
    assert "boom" in outcomes[3].error
    row = rows_of(outcomes[4])[0]
    assert (row.baseline_name, row.ratio) == ("peer", 0.5)


def test_each_script_gets_its_weighted_share_of_what_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import benchmarks.suite as suite

    given: dict[str, float] = {}

    def fake_run(name: str, *, timeout: float, **_kw: object) -> Outcome:
        given[name] = timeout
        return Outcome(name, "ok", 0.0, {})

    monkeypatch.setattr(suite, "run_script", fake_run)
    monkeypatch.setattr(suite, "script_exists", lambda name, package="": name != "gone")
    monkeypatch.setattr(suite, "SHARES", {"heavy": 3.0, "light": 1.0})
    suite.run_suite(["heavy", "gone", "light"], budget=400, log=lambda _t: None, min_share=1)
    assert given["heavy"] == pytest.approx(300, abs=1)  # 3 of the 4 weights present
    assert given["light"] == pytest.approx(400 - 0, abs=1)  # all that is left
    assert "gone" in given  # a missing script is still asked for (and reported missing)


def test_every_script_in_the_suite_exists() -> None:
    import benchmarks.suite as suite

    assert all(suite.script_exists(name) for name in suite.SCRIPTS)
    assert set(suite.SHARES) <= set(suite.SCRIPTS)


def test_command_line_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0
    assert "--quick" in out.stdout and "--no-docs" in out.stdout
