"""``aether bench --metrics-addr`` serves the bench store's metrics while it runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.observability.helpers import value
from tests.observability.test_node_scrape import try_scrape
from tests.servers import free_port

CLI = [str(Path(sys.executable).with_name("aether"))]


def test_bench_serves_append_metrics_while_running() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    args = ["--store", "memory", "bench", "append", "--duration", "20s", "--json"]
    bench = subprocess.Popen(
        [*CLI, *args, "--metrics-addr", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        seen = 0.0
        while seen == 0 and time.monotonic() < deadline and bench.poll() is None:
            seen = value(try_scrape(url), "aether_appended_events_total", store="memory")
            time.sleep(0.2)
        assert seen > 0
        later = seen
        while later <= seen and time.monotonic() < deadline and bench.poll() is None:
            samples = try_scrape(url)  # {} when one scrape failed (a busy machine): again
            if samples:
                later = value(samples, "aether_appended_events_total", store="memory")
                assert later >= seen  # a counter never goes back
            time.sleep(0.05)
        assert later > seen, bench.poll()  # the counter moves as the bench appends
    finally:
        bench.terminate()
        bench.communicate(timeout=30)


def test_bench_refuses_a_malformed_metrics_address() -> None:
    r = subprocess.run(
        [*CLI, "--store", "memory", "bench", "append", "--metrics-addr", "9464"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "--metrics-addr" in r.stderr and "HOST:PORT" in r.stderr
