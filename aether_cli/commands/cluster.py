"""``aether cluster status``: leader, live nodes and shard map of a namespace's cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from aether_cli.commands.cluster_common import duration_option, require_nats
from aether_cli.context import cli_state, out, print_json, run, settings_or_fail
from aether_cli.live import refresh_until_stopped

if TYPE_CHECKING:
    from aether.cluster import ClusterStatus

cluster_app = typer.Typer(help="Inspect the cluster of a namespace.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``cluster status`` to `app`."""
    app.add_typer(cluster_app, name="cluster")


@cluster_app.command("status")
def cluster_status(
    ctx: typer.Context,
    shards: Annotated[
        bool, typer.Option("--shards", help="List the owner of every shard.")
    ] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[
        str, typer.Option("--interval", help="Refresh interval with --watch.")
    ] = "1s",
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON document (a JSON line per refresh).")
    ] = False,
) -> None:
    """Show the leader (node, term, lease left), the live nodes (host, heartbeat age,
    shards) and the shard map. Exit 4 if the namespace has no cluster, 5 without NATS."""
    settings = settings_or_fail(ctx)
    require_nats(settings)
    every = duration_option(interval, "--interval") or 1.0
    as_json = cli_state(ctx).json or json_output

    async def body() -> None:
        from aether.cluster import read_status  # nats-py loads only when used
        from aether.connect import connect

        nc = await connect(settings)
        try:
            if not watch:
                _show(await read_status(nc, settings.namespace), as_json, shards)
                return
            await refresh_until_stopped(
                lambda: read_status(nc, settings.namespace),
                lambda status: _render(status, shards),
                lambda status: _show(status, as_json, shards),
                every=every,
                as_json=as_json,
            )
        finally:
            await nc.close()

    run(ctx, body)


def _show(status: ClusterStatus, as_json: bool, shards: bool) -> None:
    if as_json:
        print_json(status.to_dict(shards=True))
    else:
        out.print(_render(status, shards))


def _render(status: ClusterStatus, shards: bool) -> Group:
    parts: list[object] = []
    ld = status.leader
    if ld is None:
        parts.append(Text(f"Leader: none (namespace {status.namespace})", style="bold yellow"))
    else:
        parts.append(
            Text(
                f"Leader: {ld.node_id}  term {ld.term}  lease left {status.lease_left:.1f}s "
                f"of {ld.lease:g}s",
                style="bold",
            )
        )
    nodes = Table("Node", "Host", "PID", "Heartbeat age", "Shards", "Epoch", "Version")
    for col in (2, 3, 4, 5):
        nodes.columns[col].justify = "right"
    for n in status.nodes:
        star = " *" if ld is not None and ld.node_id == n.info.node_id else ""
        nodes.add_row(
            Text(n.info.node_id + star),
            Text(n.info.host),
            str(n.info.pid),
            f"{n.heartbeat_age:.1f}s",
            str(n.info.shards),
            str(n.info.epoch),
            n.info.version,
        )
    parts.append(nodes if status.nodes else Text("Nodes: none alive"))
    m = status.shard_map
    if m is None:
        parts.append(Text("Shard map: none yet"))
    else:
        state = "settled" if m.settled else f"{len(m.handoffs)} in hand-off"
        doc = status.to_dict(shards=False)["shard_map"]
        table = Table(
            "Owner",
            "Shards",
            "Count",
            title=f"Shard map: epoch {m.epoch}, term {m.term}, {m.shard_count} shards, {state}",
            title_justify="left",
        )
        counts = m.counts()
        for node_id, ranges in doc["ranges"].items():
            table.add_row(Text(node_id), Text(ranges), str(counts.get(node_id, 0)))
        for h in m.handoffs:
            table.add_row(Text("(hand-off)"), str(h.shard), f"{h.source} -> {h.target}")
        parts.append(table)
        if shards:
            full = Table("Shard", "Owner", title="Every shard", title_justify="left")
            for s, o in enumerate(m.owners):
                full.add_row(str(s), Text(o or "(hand-off)"))
            parts.append(full)
    return Group(*parts)  # type: ignore[arg-type]
