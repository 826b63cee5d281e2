"""``aether node run``: run one cluster node until SIGINT/SIGTERM, then leave gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from aether.errors import NatsUnavailableError, ValidationError
from aether_cli.commands.cluster_common import duration_option, require_nats
from aether_cli.context import EXIT_USAGE, cli_state, fail, out, print_json, run, settings_or_fail
from aether_cli.signals import stop_on_signals

if TYPE_CHECKING:
    from aether.cluster import ClusterNode

node_app = typer.Typer(help="Run a cluster node.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``node run`` to `app`."""
    app.add_typer(node_app, name="node")


@node_app.command("run")
def node_run(
    ctx: typer.Context,
    node_id: Annotated[
        str | None, typer.Option("--node-id", help="Node id (default: <host>-<pid>).")
    ] = None,
    shards: Annotated[
        int | None, typer.Option("--shards", help="Shard count (default: cluster.shard_count).")
    ] = None,
    heartbeat: Annotated[
        str | None, typer.Option("--heartbeat", help="Heartbeat interval, e.g. 1s.")
    ] = None,
    lease: Annotated[str | None, typer.Option("--lease", help="Leader lease, e.g. 5s.")] = None,
    node_ttl: Annotated[
        str | None,
        typer.Option(
            "--node-ttl",
            help="A node is dead this long after its last heartbeat (default: the lease).",
        ),
    ] = None,
    weight: Annotated[float, typer.Option("--weight", help="Relative share of shards.")] = 1.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="JSON log lines instead of the live view.")
    ] = False,
    metrics_addr: Annotated[
        str | None, typer.Option("--metrics-addr", help="Serve Prometheus /metrics at HOST:PORT.")
    ] = None,
    processor: Annotated[
        list[str] | None,
        typer.Option(
            "--processor",
            metavar="MODULE:ATTR",
            help="Run this processor on the node's shards (repeatable); imported from the "
            "current directory or PYTHONPATH.",
        ),
    ] = None,
    relay: Annotated[
        bool,
        typer.Option(
            "--relay", help="Publish every appended event onto the NATS bus (at-least-once)."
        ),
    ] = False,
) -> None:
    """Join the namespace's cluster and run until SIGINT/SIGTERM; then release the shards,
    resign leadership, deregister and exit 0. Without a NATS server: exit 5.

    With --processor (and --relay) the node runs those processors on the shards it owns,
    from their durable checkpoints; a hand-over finishes the event in flight and persists
    the checkpoint before the shard moves."""
    settings = settings_or_fail(ctx)
    require_nats(settings)
    from aether_cli.commands.processors import check_unique_names, load_processor

    hosted = [load_processor(spec) for spec in processor or []]
    check_unique_names(hosted)
    hb = duration_option(heartbeat, "--heartbeat")
    ls = duration_option(lease, "--lease")
    ttl = duration_option(node_ttl, "--node-ttl")
    as_json = cli_state(ctx).json or json_output
    emit = _Emitter(as_json)
    from aether.cluster import ClusterNode  # nats-py loads only when a node runs

    def build(processors: list[Any]) -> ClusterNode:
        try:
            node = ClusterNode(
                settings,
                node_id,
                shard_count=shards,
                heartbeat=hb,
                lease=ls,
                node_ttl=ttl,
                weight=weight,
                on_acquired=lambda s: emit.event("acquired", shards=sorted(s)),
                on_released=lambda s: emit.event("released", shards=sorted(s)),
                on_elected=lambda t: emit.event("elected", term=t),
                on_demoted=lambda t: emit.event("demoted", term=t),
                processors=processors,
            )
        except ValidationError as e:
            fail(str(e), EXIT_USAGE)
        emit.node = node
        return node

    # Without --relay the options are checked before anything connects; the relay's bus
    # must be open before its node is built.
    first = None if relay else build(hosted)

    async def body() -> None:
        with stop_on_signals() as stop:
            from aether.observability import observe_node

            bus: Any = None
            try:
                node = first
                if node is None:
                    from aether.bus.nats import NatsEventBus
                    from aether.processing.relay import Relay

                    bus = await NatsEventBus.open(settings)
                    node = build([*hosted, Relay(bus, settings.namespace)])
                obs = observe_node(
                    node,
                    metrics_addr=metrics_addr,
                    json_logs=as_json,
                    processors=node.processor_host,
                )
                try:
                    await _serve(node, stop, emit, as_json)
                finally:
                    obs.close()
                    emit.event("stopped")
            finally:
                if bus is not None:
                    await bus.close()

    run(ctx, body)


async def _serve(node: ClusterNode, stop: asyncio.Event, emit: _Emitter, as_json: bool) -> None:
    """Start the node, run until `stop`, then stop it gracefully: its processors finish
    the event in flight and persist their checkpoints before the shards are released."""
    await node.start()
    emit.event(
        "joined",
        namespace=node.namespace,
        shard_count=node.shard_count,
        heartbeat=node.heartbeat,
        lease=node.lease,
        node_ttl=node.node_ttl,
    )

    def check_connection() -> None:
        if node.connection_closed:
            emit.event("connection-lost")
            raise NatsUnavailableError(
                f"node {node.node_id}: lost NATS for good (reconnect attempts exhausted)"
            )

    try:
        if as_json or not out.is_terminal:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                check_connection()
        else:
            with Live(_view(node), console=out, refresh_per_second=4, transient=True) as live:
                while not stop.is_set():
                    live.update(_view(node))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), min(node.heartbeat, 1.0))
                    check_connection()
    finally:
        emit.event("stopping")
        await node.stop()  # releases every shard: the processors checkpoint first


class _Emitter:
    """Prints node events as JSON lines or short text lines."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.node: ClusterNode | None = None

    def event(self, name: str, **fields: Any) -> None:
        node_id = self.node.node_id if self.node is not None else None
        if self.as_json:
            doc = {"ts": datetime.now(UTC).isoformat(), "event": name, "node_id": node_id}
            doc.update(fields)
            print_json(doc)
            return
        from aether.cluster import compact_ranges

        extra = " ".join(
            f"{k}={compact_ranges(v) if k == 'shards' else v}" for k, v in fields.items()
        )
        stamp = time.strftime("%H:%M:%S")
        out.print(f"{stamp} {node_id} {name} {extra}".rstrip(), markup=False)


def _view(node: ClusterNode) -> Table:
    from aether.cluster import compact_ranges

    status = node.status()
    role = "leader" if node.is_leader else "follower"
    title = f"node {node.node_id} · {role}"
    if node.is_leader:
        title += f" · term {node.term}"
    elif status.leader is not None:
        title += f" · leader {status.leader.node_id} (term {status.leader.term})"
    table = Table("Peer", "Heartbeat age", "Shards", title=title, title_justify="left")
    for n in status.nodes:
        me = " (this node)" if n.info.node_id == node.node_id else ""
        table.add_row(n.info.node_id + me, f"{n.heartbeat_age:.1f}s", str(n.info.shards))
    m = node.shard_map
    table.caption = f"owns {len(node.shards)}/{node.shard_count}: {compact_ranges(node.shards)}" + (
        f" · map epoch {m.epoch}{'' if m.settled else ' (hand-off)'}" if m else ""
    )
    table.caption_justify = "left"
    return table
