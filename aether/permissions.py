"""NATS permissions that confine a user to one aether namespace.

`namespace_permissions(ns)` lists exactly the subjects aether's stores, bus and cluster use
for namespace `ns` (derived by recording every subject a full workload publishes against
a real server; ``tests/ops/test_permissions.py`` keeps it honest). `render_permissions`
prints them as a nats-server ``permissions`` block for a user entry.

Streams of namespace ``ns``: ``AETHER_ns`` (events), ``AETHER_ns_SNAPSHOTS`` and the KV
bucket ``aether_ns_cluster`` (stream ``KV_aether_ns_cluster``). The user may create and
read them, create, read and delete its consumers, and use direct get; it may not delete
or purge a stream, nor touch any other namespace's subjects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aether.subjects import cluster_bucket, snapshot_stream_name, stream_name, validate_namespace


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish to and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def namespace_streams(namespace: str) -> tuple[str, str, str]:
    """The three JetStream streams of a namespace: events, snapshots, cluster KV."""
    return (
        stream_name(namespace),
        snapshot_stream_name(namespace),
        f"KV_{cluster_bucket(namespace)}",
    )


def namespace_permissions(namespace: str, inbox_prefix: str = "_INBOX") -> Permissions:
    """Exactly what a user of namespace `namespace` needs (see the module doc)."""
    ns = validate_namespace(namespace)
    api = "$JS.API"
    publish = [f"aether.{ns}.>", f"$KV.{cluster_bucket(ns)}.>", f"{api}.INFO"]
    for s in namespace_streams(ns):
        publish += [
            f"{api}.STREAM.INFO.{s}",
            f"{api}.STREAM.CREATE.{s}",
            f"{api}.STREAM.MSG.GET.{s}",
            f"{api}.DIRECT.GET.{s}",
            f"{api}.DIRECT.GET.{s}.>",
            f"{api}.CONSUMER.CREATE.{s}",
            f"{api}.CONSUMER.CREATE.{s}.>",
            f"{api}.CONSUMER.INFO.{s}.*",
            f"{api}.CONSUMER.DELETE.{s}.*",
            f"{api}.CONSUMER.MSG.NEXT.{s}.*",
            f"$JS.ACK.{s}.>",
            f"$JS.FC.{s}.>",
        ]
    publish.append(f"{inbox_prefix}.>")  # replies to node RPC requests
    subscribe = [f"aether.{ns}.>", f"{inbox_prefix}.>"]
    return Permissions(tuple(publish), tuple(subscribe))


def render_permissions(namespace: str, inbox_prefix: str = "_INBOX") -> str:
    """A nats-server ``permissions`` block (for a user entry) confining it to `namespace`."""
    p = namespace_permissions(namespace, inbox_prefix)

    def block(items: tuple[str, ...]) -> list[str]:
        return [f"      {json.dumps(s)}" for s in items]

    lines = [
        f"# aether namespace {namespace!r}: put this in the user's entry of the server config,",
        "# e.g. authorization { users: [ {user: app, password: ..., permissions: {...}} ] }",
        "permissions: {",
        "  publish: {",
        "    allow: [",
        *block(p.publish),
        "    ]",
        "  }",
        "  subscribe: {",
        "    allow: [",
        *block(p.subscribe),
        "    ]",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether NATS subject `subject` matches `pattern` (``*`` one token, ``>`` the rest)."""
    pt = pattern.split(".")
    st = subject.split(".")
    for i, tok in enumerate(pt):
        if tok == ">":
            return len(st) > i
        if i >= len(st) or (tok != "*" and tok != st[i]):
            return False
    return len(pt) == len(st)


def allowed(permissions: Permissions, subject: str, *, op: str = "publish") -> bool:
    """Whether `permissions` allow `op` (``publish`` or ``subscribe``) on `subject`."""
    patterns = permissions.publish if op == "publish" else permissions.subscribe
    return any(subject_matches(p, subject) for p in patterns)
