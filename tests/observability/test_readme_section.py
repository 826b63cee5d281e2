"""The README's "Metrics and tracing" example runs and prints what the README shows."""

from __future__ import annotations

from pathlib import Path

from tests.test_readme import blocks, run_python, section


def test_metrics_example_runs_and_prints_the_counter(tmp_path: Path) -> None:
    text = section("Metrics and tracing")
    [code] = blocks(text, "python")
    [shown] = blocks(text, "text")
    assert run_python(code, tmp_path) == shown
