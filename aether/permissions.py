"""NATS permissions that confine a user to one aether namespace.

`namespace_permissions(ns)` lists exactly the subjects aether's stores, bus and cluster use
for namespace `ns` (derived by recording every subject a full workload publishes against
a real server; ``tests/ops/test_permissions.py`` keeps it honest). `render_permissions`
prints them as a nats-server ``permissions`` block for a user entry.

Resources of namespace ``ns`` (`aether.subjects`): the streams ``AETHER_ns`` (events),
``AETHERSNAP_ns`` (snapshots) and ``AETHERPROC_ns`` (processor state), the KV buckets
``aethercluster_ns`` and ``aetherproc_ns`` (streams ``KV_...``), the subjects
``aether.ns.>`` and the reply inboxes ``_INBOX_aether.ns.>`` (`aether.subjects.inbox_prefix`,
which the client uses by default). Every name is exact, never a prefix wildcard, and no
namespace can spell another's names, so the template grants nothing of any other
namespace: not its streams, buckets, subjects or replies (never ``_INBOX.>``). The user
may create and read its streams, create, read and delete their consumers, use direct
get, and put and read its KV keys; it may not delete or purge a stream.

Writers outside aether are kept off a namespace by the same means: give them no
``publish`` permission on ``aether.ns.>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aether.subjects import (
    cluster_bucket,
    inbox_prefix,
    processor_bucket,
    processor_stream_name,
    snapshot_stream_name,
    stream_name,
    validate_namespace,
)


@dataclass(frozen=True)
class Permissions:
    """Subjects a user may publish to and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def namespace_buckets(namespace: str) -> tuple[str, str]:
    """The KV buckets of a namespace: cluster state, processor state."""
    return (cluster_bucket(namespace), processor_bucket(namespace))


def namespace_streams(namespace: str) -> tuple[str, ...]:
    """The JetStream streams of a namespace: events, snapshots, processor state and the
    streams behind its KV buckets."""
    return (
        stream_name(namespace),
        snapshot_stream_name(namespace),
        processor_stream_name(namespace),
        *(f"KV_{b}" for b in namespace_buckets(namespace)),
    )


def namespace_permissions(namespace: str, reply_prefix: str | None = None) -> Permissions:
    """Exactly what a user of namespace `namespace` needs (see the module doc).

    `reply_prefix` is the inbox prefix the user's clients use (``nats.inbox_prefix``);
    by default the namespace's own, `aether.subjects.inbox_prefix(namespace)`.
    """
    ns = validate_namespace(namespace)
    inbox = reply_prefix or inbox_prefix(ns)
    api = "$JS.API"
    publish = [f"aether.{ns}.>", *(f"$KV.{b}.>" for b in namespace_buckets(ns)), f"{api}.INFO"]
    for s in namespace_streams(ns):
        publish += [
            f"{api}.STREAM.INFO.{s}",
            f"{api}.STREAM.CREATE.{s}",
            f"{api}.STREAM.MSG.GET.{s}",
            f"{api}.DIRECT.GET.{s}",
            f"{api}.DIRECT.GET.{s}.>",
            f"{api}.CONSUMER.CREATE.{s}",
            f"{api}.CONSUMER.CREATE.{s}.>",
            f"{api}.CONSUMER.DURABLE.CREATE.{s}.*",
            f"{api}.CONSUMER.INFO.{s}.*",
            f"{api}.CONSUMER.DELETE.{s}.*",
            f"{api}.CONSUMER.MSG.NEXT.{s}.*",
            f"$JS.ACK.{s}.>",
            f"$JS.FC.{s}.>",
        ]
    publish.append(f"{inbox}.>")  # replies to node RPC requests
    subscribe = [f"aether.{ns}.>", f"{inbox}.>"]
    return Permissions(tuple(publish), tuple(subscribe))


def render_permissions(namespace: str, reply_prefix: str | None = None) -> str:
    """A nats-server ``permissions`` block (for a user entry) confining it to `namespace`
    (`reply_prefix`: as in `namespace_permissions`)."""
    p = namespace_permissions(namespace, reply_prefix)

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
