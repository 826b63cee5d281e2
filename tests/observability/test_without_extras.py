"""Without prometheus-client and opentelemetry-api every instrument is a no-op."""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import sys
for name in ("prometheus_client", "opentelemetry", "opentelemetry.trace"):
    sys.modules[name] = None  # as if not installed: importing them raises ImportError
"""

CODE = (
    BLOCK
    + """
import asyncio
import aether
from aether import Event, InMemoryEventStore
from aether.bus import LocalEventBus
from aether.errors import ConfigError
from aether import observability as obs

assert not obs.metrics_available() and not obs.tracing_available()
store = InMemoryEventStore()
assert obs.instrument_store(store) is store
bus = LocalEventBus()
assert obs.instrument_bus(bus) is bus
reg = obs.register_processor_stats(lambda: [])
reg.close()
e = Event("T", "a-1", 1)
with obs.process_span(e, "p") as span:
    assert span is None
try:
    obs.serve_metrics("127.0.0.1:0")
except ConfigError as err:
    assert "prometheus-client" in str(err)
else:
    raise AssertionError("serve_metrics without the extra")
async def main():
    stored = await store.save_event(e)
    assert stored.metadata == {}
asyncio.run(main())
print("ok")
"""
)


def test_no_op_without_the_extras() -> None:
    p = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ok\n"


def test_import_aether_imports_neither_extra() -> None:
    code = (
        "import sys, aether, aether.store, aether.bus, aether.cluster\n"
        "bad = [m for m in sys.modules if m.startswith(('prometheus_client', 'opentelemetry'))]\n"
        "assert not bad, bad\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
