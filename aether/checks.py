"""`check_deployment`: is the configured NATS ready for aether? (``aether config check``)

Connects with the given settings and reports, one `Check` each: the connection, its
transport (TLS, or plain text and whether credentials travel in it), JetStream,
the server version's features (per-message TTL 2.11+, atomic batch publish 2.12+), the
maximum payload, and the namespace's streams and cluster bucket if they exist (compared
with the configuration; a missing stream is fine, aether creates it on first use).
Nothing is created or changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nats.aio.client import Client as NATS

from aether._nats.connection import describe_servers, transport_is_tls
from aether._nats.errors import ERR_STREAM_NOT_FOUND, JsApiError
from aether._nats.info import parse_version, server_info
from aether._nats.jsapi import JsApi
from aether.config import Settings
from aether.connect import connect
from aether.errors import AetherError, PermissionDeniedError

OK = "ok"
MISSING = "missing"
WARN = "warning"
INFO = "info"


@dataclass(frozen=True)
class Check:
    """One finding: `status` is ok, missing, warning or info; `required` makes a missing
    finding fatal (``aether config check`` then exits non-zero)."""

    name: str
    status: str
    detail: str
    required: bool = True

    @property
    def failed(self) -> bool:
        """Whether this finding means aether cannot work as configured."""
        return self.required and self.status == MISSING

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


async def _api(api: JsApi, subject: str, what: str) -> dict[str, Any]:
    """The answer to an API request, with an error answer as ``{"error": ...}``."""
    try:
        return await api.request(subject, None, what)
    except JsApiError as e:
        return {"error": {"code": e.code, "err_code": e.err_code, "description": e.description}}


async def check_deployment(settings: Settings, *, wait: float = 3.0) -> list[Check]:
    """Every finding about the NATS deployment `settings` point at.

    Raises `NatsUnavailableError`/`AuthError` when it cannot connect at all.
    """
    nc = await connect(settings)
    try:
        return await _checks(nc, settings, wait)
    finally:
        await nc.close()


async def _checks(nc: NATS, settings: Settings, wait: float) -> list[Check]:
    info = server_info(nc)  # the server's INFO: version, max_payload, jetstream, tls...
    version = str(info.get("version", "0.0.0"))
    vt = parse_version(version)
    api = JsApi(nc, wait)
    url = nc.connected_url
    tls = (
        "TLS" if info.get("tls_required") or (url is not None and url.scheme == "tls") else "plain"
    )
    where = describe_servers([str(nc.connected_url.geturl())] if nc.connected_url else [])
    checks = [Check("connection", OK, f"connected to {where} (nats-server {version}, {tls})")]
    checks.append(_transport_check(nc, settings))

    js_ok = False
    try:
        acct = await _api(api, "$JS.API.INFO", "account info")
        if "error" in acct:
            checks.append(
                Check("jetstream", MISSING, f"JetStream: {acct['error'].get('description')}")
            )
        else:
            js_ok = True
            limits = acct.get("limits", {})
            storage = limits.get("max_storage", -1)
            room = "unlimited" if storage in (-1, 0) else f"{storage} bytes"
            checks.append(Check("jetstream", OK, f"JetStream enabled (file storage: {room})"))
    except PermissionDeniedError as e:
        checks.append(Check("jetstream", MISSING, str(e)))
    except AetherError as e:  # no responders / timeout: JetStream is off
        checks.append(
            Check(
                "jetstream",
                MISSING,
                f"JetStream does not answer ({e}); start nats-server with JetStream enabled (-js)",
            )
        )

    checks.append(
        Check(
            "per-message TTL",
            OK if vt >= (2, 11, 0) else MISSING,
            "nats-server 2.11+ (cluster leases and membership use it)"
            + ("" if vt >= (2, 11, 0) else f"; this server is {version}"),
            required=False,
        )
    )
    checks.append(
        Check(
            "atomic batch publish",
            OK if vt >= (2, 12, 0) else MISSING,
            "nats-server 2.12+ (save_events of several events is atomic)"
            + ("" if vt >= (2, 12, 0) else f"; this server is {version}"),
        )
    )
    max_payload = int(info.get("max_payload", 0) or 0)
    if max_payload and settings.max_event_bytes > max_payload:
        checks.append(
            Check(
                "max payload",
                WARN,
                f"max_event_bytes is {settings.max_event_bytes} but the server accepts at most "
                f"{max_payload} bytes per message: larger events are refused",
                required=False,
            )
        )
    else:
        checks.append(Check("max payload", OK, f"server max payload {max_payload} bytes"))
    if js_ok:
        checks += await _stream_checks(api, settings, vt)
    checks.append(lease_check(settings))
    return checks


def _transport_check(nc: NATS, settings: Settings) -> Check:
    """TLS or plain text, and what the credentials are exposed to in plain text."""
    if transport_is_tls(nc):
        return Check("transport", OK, "TLS", required=False)
    ns = settings.nats
    in_url = any("@" in s.split("://", 1)[-1].split("/", 1)[0] for s in ns.servers)
    secret = ns.password or ns.password_file or ns.token or ns.token_file or in_url
    if secret:
        return Check(
            "transport",
            WARN,
            "plain text: the password or token is sent in plain text (the server does not "
            "offer TLS; allowed by nats.allow_plaintext_auth or a loopback server)",
            required=False,
        )
    if ns.nkey_seed_file or ns.creds_file:
        return Check(
            "transport",
            WARN,
            "plain text: NKey/JWT authentication sends no secret, but all traffic is readable",
            required=False,
        )
    return Check("transport", INFO, "plain text, no authentication", required=False)


def lease_check(settings: Settings, bucket_replicas: int | None = None) -> Check:
    """Does the cluster lease outlive a stream-leader change of the cluster bucket?

    A replicated bucket (``jetstream.replicas`` > 1, or `bucket_replicas` of an existing
    bucket) is unwritable for up to `aether.cluster.defaults.FAILOVER_BOUND` seconds
    while its stream elects a new leader (measured on a 3-server cluster; see
    docs/cluster.md). A lease or node TTL at or below that makes nodes give up their
    shards on every such election: a warning.
    """
    from aether.cluster.defaults import (
        REPLICATED_LEASE,
        default_lease,
        default_node_ttl,
        failover_for,
    )

    replicas = bucket_replicas or settings.jetstream.replicas
    lease = default_lease(settings)
    ttl = default_node_ttl(settings, lease)
    failover = failover_for(replicas)
    shortest = min(lease, ttl)
    what = f"lease {lease:g}s, node_ttl {ttl:g}s, bucket replicas {replicas}"
    if failover and shortest <= failover:
        return Check(
            "cluster lease",
            WARN,
            f"{what}: a stream-leader change of a replicated bucket takes up to "
            f"{failover:g}s, so nodes would give up their shards on one; set "
            f"cluster.lease and cluster.node_ttl above {failover:g}s (unset, they default "
            f"to {REPLICATED_LEASE:g}s with replicas > 1)",
            required=False,
        )
    return Check(
        "cluster lease",
        OK,
        f"{what}"
        + (f": outlives a stream-leader change (up to {failover:g}s)" if failover else ""),
        required=False,
    )


async def _stream_checks(api: JsApi, settings: Settings, vt: tuple[int, int, int]) -> list[Check]:
    from aether.store._js_streams import (
        EVENT_FIELDS,
        SNAPSHOT_FIELDS,
        differences,
        events_stream_config,
        snapshots_stream_config,
    )
    from aether.subjects import cluster_bucket

    ns = settings.namespace
    wanted = [
        (
            "events stream",
            events_stream_config(ns, settings.jetstream, atomic=vt >= (2, 12, 0)),
            EVENT_FIELDS,
        ),
        ("snapshots stream", snapshots_stream_config(ns, settings.jetstream), SNAPSHOT_FIELDS),
    ]
    out: list[Check] = []
    for label, want, fields in wanted:
        name = want["name"]
        try:
            doc = await _api(api, f"$JS.API.STREAM.INFO.{name}", f"stream info {name}")
        except PermissionDeniedError as e:
            out.append(Check(label, MISSING, str(e)))
            continue
        except AetherError as e:
            out.append(Check(label, MISSING, f"{name}: no answer ({e})"))
            continue
        if "error" in doc:
            if doc["error"].get("err_code") == ERR_STREAM_NOT_FOUND:
                out.append(
                    Check(
                        label,
                        INFO,
                        f"{name} does not exist yet (created on first use)",
                        required=False,
                    )
                )
            else:
                out.append(Check(label, MISSING, f"{name}: {doc['error'].get('description')}"))
            continue
        diff = differences(doc.get("config", {}), want, fields)
        if diff:
            parts = ", ".join(f"{k} is {h!r}, want {w!r}" for k, (h, w) in diff.items())
            out.append(Check(label, MISSING, f"{name} differs from the configuration: {parts}"))
        else:
            state = doc.get("state", {})
            out.append(
                Check(
                    label,
                    OK,
                    f"{name}: {state.get('messages', 0)} messages, configuration as expected",
                )
            )
    kv = f"KV_{cluster_bucket(ns)}"
    try:
        doc = await _api(api, f"$JS.API.STREAM.INFO.{kv}", f"stream info {kv}")
    except PermissionDeniedError as e:
        out.append(Check("cluster bucket", MISSING, str(e), required=False))
        return out
    except AetherError as e:
        out.append(Check("cluster bucket", MISSING, f"{kv}: no answer ({e})", required=False))
        return out
    if "error" in doc:
        out.append(
            Check(
                "cluster bucket",
                INFO,
                f"{cluster_bucket(ns)} does not exist yet (the first cluster node creates it)",
                required=False,
            )
        )
    else:
        cfg = doc.get("config", {})
        if cfg.get("allow_msg_ttl") and cfg.get("subject_delete_marker_ttl"):
            out.append(
                Check(
                    "cluster bucket",
                    OK,
                    f"{cluster_bucket(ns)}: per-key TTLs enabled",
                    required=False,
                )
            )
        else:
            out.append(
                Check(
                    "cluster bucket",
                    MISSING,
                    f"{cluster_bucket(ns)} exists without per-key TTLs "
                    "and expiry markers; delete it so aether can create it",
                    required=False,
                )
            )
    return out
