"""Reading aether's registry (in-process) or a /metrics page (over HTTP)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text as {(name, sorted labels): value}."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def local() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of aether's registry in this process."""
    from prometheus_client import generate_latest

    from aether.observability import registry

    return parse(generate_latest(registry()).decode())


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples served at `url`."""
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return parse(r.read().decode())


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sample `name` with exactly `labels` (0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
