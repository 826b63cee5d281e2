"""Raw messages: the hot path for pub acks, replay and the bus, both directions.

nats-py turns every incoming message into a `Msg` (header parsing, string decoding),
queues it and hands it to a callback task. For aether's own inboxes (pub acks,
pull-consumer deliveries) that costs more than decoding the event itself.
`subscribe_raw` registers a plain function that nats-py's reader calls synchronously
with the raw bytes (subject, reply, payload, header block) of each message of that
subscription; every other subscription of the connection is untouched.

Seam: ``Client._process_msg(sid, subject, reply, data, headers)``, private but stable
across nats-py 2.x, and nats-py's protocol parser, replaced by `aether._nats.parser`
(which calls raw handlers without going through ``_process_msg`` at all). It is
checked once per connection; if it is missing, has another signature, or
``AETHER_NATS_SEAMS=off``, raw subscriptions fall back to an ordinary callback
subscription (slower, same behaviour). A handler that raises is logged and its
exception never reaches nats-py's read loop (which would stop reading the connection).

Outbound, `FrameWriter.write` appends a prebuilt ``PUB``/``HPUB`` frame (see `pub_frame`,
`hpub_frame`, `header_block`) to nats-py's pending buffer and kicks its flusher, as
``Client.publish`` does after building the same frame from a header dict. Seam:
``Client._pending``, ``_pending_data_size``, ``_flush_queue`` and ``_flusher_task``;
checked once per connection. `write` returns False (the caller then uses nats-py's
public ``publish``) when the seam is missing or off, and whenever nats-py's own path has
more to do: not connected (it buffers or refuses during a reconnect), draining, or its
pending buffer above its limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats import errors as nats_errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from aether._nats import parser
from aether._nats.seams import seams_enabled

log = logging.getLogger("aether.nats")

RawHandler = Callable[[bytes, bytes, bytes, bytes | None], None]
"""``handler(subject, reply, data, headers)``; `headers` is the raw header block or None."""

_ATTR = "_aether_raw_dispatch"


def _guarded(
    handler: RawHandler, subject: bytes, reply: bytes, data: bytes, hdr: bytes | None
) -> None:
    try:
        handler(subject, reply, data, hdr)
    except Exception:
        log.exception("a raw NATS message handler failed; the message was dropped")


class _Dispatch:
    """Per-connection table of subscription id -> raw handler."""

    def __init__(self, nc: NATS) -> None:
        self.handlers: dict[int, RawHandler] = {}
        self._orig: Callable[..., Awaitable[None]] = nc._process_msg

        async def process_msg(
            sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
        ) -> None:
            handler = self.handlers.get(sid)
            if handler is None:
                await self._orig(sid, subject, reply, data, headers)
                return
            _guarded(handler, subject, reply, data, headers)

        nc._process_msg = process_msg  # type: ignore[method-assign]
        self.fast_parser = parser.install(nc, self.deliver)

    def deliver(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> bool:
        """Hand a message to its raw handler (for `FastParser`); False if it has none."""
        handler = self.handlers.get(sid)
        if handler is None:
            return False
        _guarded(handler, subject, reply, data, headers)
        return True


def _dispatch(nc: NATS) -> _Dispatch | None:
    existing = getattr(nc, _ATTR, None)
    if isinstance(existing, _Dispatch):
        return existing
    if not seams_enabled():
        return None
    orig = getattr(nc, "_process_msg", None)
    if orig is None or not inspect.iscoroutinefunction(orig):
        return None
    try:
        params = list(inspect.signature(orig).parameters)
    except (TypeError, ValueError):
        return None
    if params[:5] != ["sid", "subject", "reply", "data", "headers"]:
        return None
    d = _Dispatch(nc)
    setattr(nc, _ATTR, d)
    return d


def prepare(nc: NATS) -> None:
    """Check (and install) the hot-path seams of a new connection, once, at connect."""
    _dispatch(nc)
    frame_writer(nc)


def raw_seam_active(nc: NATS) -> bool:
    """Whether raw subscriptions on `nc` use the fast seam (False: public fallback)."""
    return _dispatch(nc) is not None


def sid_of(sub: Any) -> int:
    """nats-py's subscription id of `sub` (``Subscription._id``; the public ``sid`` too)."""
    sid = getattr(sub, "_id", None)
    if sid is None:
        sid = getattr(sub, "sid", None)
    return int(sid) if sid is not None else -1


class RawSubscription:
    """A subscription whose messages go to a raw handler; `unsubscribe` when done."""

    def __init__(self, nc: NATS, sub: Any, dispatch: _Dispatch | None) -> None:
        self._nc = nc
        self._sub = sub
        self._dispatch = dispatch

    @property
    def sid(self) -> int:
        """The subscription id nats-py gave it."""
        return sid_of(self._sub)

    async def unsubscribe(self) -> None:
        """Stop the handler and remove the interest (quietly if the connection is gone)."""
        if self._dispatch is not None:
            self._dispatch.handlers.pop(sid_of(self._sub), None)
        if self._nc.is_closed:
            return
        with contextlib.suppress(Exception):
            await self._sub.unsubscribe()


def _headers_block(msg: Msg) -> bytes | None:
    """Rebuild a raw header block from a parsed `Msg` (fallback path only)."""
    if not msg.headers:
        return None
    status = msg.headers.get("Status")
    desc = msg.headers.get("Description")
    first = b"NATS/1.0" + (b" " + status.encode() if status else b"")
    if status and desc:
        first += b" " + desc.encode()
    lines = [first]
    for k, v in msg.headers.items():
        if k not in ("Status", "Description"):
            lines.append(f"{k}: {v}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def subscribe_raw(
    nc: NATS, subject: str, handler: RawHandler, *, queue: str = ""
) -> RawSubscription:
    """Subscribe `handler` to `subject`. Register before sending anything that is answered
    on `subject`: messages arriving before this returns are not delivered."""
    dispatch = _dispatch(nc)
    if dispatch is None:

        async def cb(msg: Msg) -> None:
            _guarded(
                handler, msg.subject.encode(), msg.reply.encode(), msg.data, _headers_block(msg)
            )

        sub = await nc.subscribe(
            subject, queue=queue, cb=cb, pending_bytes_limit=0, pending_msgs_limit=0
        )
        return RawSubscription(nc, sub, None)
    sub = await nc.subscribe(subject, queue=queue, pending_bytes_limit=0, pending_msgs_limit=0)
    dispatch.handlers[sid_of(sub)] = handler
    return RawSubscription(nc, sub, dispatch)


def status_of(headers: bytes | None) -> int:
    """The inline status code of a header block (``NATS/1.0 404 ...``), 0 if none."""
    if headers is None or len(headers) < 12 or headers[8:9] != b" ":
        return 0
    code = headers[9:12]
    return int(code) if code.isdigit() else 0


def header_value(headers: bytes | None, name: bytes) -> bytes | None:
    """The value of header `name` (exact case) in a raw header block, or None."""
    if headers is None:
        return None
    key = b"\r\n" + name + b":"
    i = headers.find(key)
    if i < 0:
        return None
    i += len(key)
    j = headers.find(b"\r\n", i)
    return headers[i:j].strip()


async def flush(nc: NATS, seconds: float) -> None:
    """One round trip that follows everything written on `nc` before it (a SUB included):
    when it returns, the server has processed those commands.

    nats-py's ``flush`` writes its PING straight to the socket, ahead of commands still
    queued for its flusher task, so its PONG can come back before the server saw a SUB
    sent just before: a publisher on another connection then races the subscription
    (measured under CPU load: the first 4 to 30 of 30 messages lost, 3 runs in 60). The
    flusher's queue is drained first (seam: ``_flush_queue``, ``_flusher_task``); without
    the seam a second round trip, which certainly follows the queued commands, does it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    def left() -> float:  # nats-py refuses a timeout <= 0
        return max(deadline - loop.time(), 0.001)

    if not await _drain_flusher(nc, seconds):
        await nc.flush(left())  # type: ignore[arg-type]
    await nc.flush(left())  # type: ignore[arg-type]


async def _drain_flusher(nc: NATS, seconds: float) -> bool:
    """Wait until nats-py's flusher wrote what is queued; False if the seam is not there
    or the flusher stopped (a disconnect); nats-py's ``FlushTimeoutError`` after
    `seconds`, as its own ``flush`` raises."""
    if not seams_enabled() or not nc.is_connected:
        return False
    queue = getattr(nc, "_flush_queue", None)
    task = getattr(nc, "_flusher_task", None)
    if not isinstance(queue, asyncio.Queue) or not isinstance(task, asyncio.Task) or task.done():
        return False
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        queue.put_nowait(done)  # the flusher writes the pending commands, then sets it
    except asyncio.QueueFull:
        return False
    # The flusher may stop meanwhile (a disconnect): then `done` is never set.
    await asyncio.wait((done, task), timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    if done.done():
        return True
    if task.done():
        return False
    raise nats_errors.FlushTimeoutError


# --- outbound: prebuilt frames ----------------------------------------------------------

_WRITER_ATTR = "_aether_frame_writer"
_WRITER_SEAMS = ("_pending", "_pending_data_size", "_flush_queue", "_flusher_task", "_status")


def header_block(headers: dict[str, str]) -> bytes | None:
    """The NATS header block of `headers` as nats-py would send it, or None when a key or
    value needs nats-py's own handling (empty, a line break, not ASCII)."""
    parts = ["NATS/1.0\r\n"]
    for k, v in headers.items():
        v = v.strip()
        if not k or "\r" in v or "\n" in v or ":" in k or " " in k:
            return None
        parts.append(f"{k}: {v}\r\n")
    parts.append("\r\n")
    text = "".join(parts)
    if not text.isascii():
        return None
    return text.encode()


def hpub_frame(subject: bytes, reply: bytes, headers: bytes, payload: bytes) -> bytes:
    """``HPUB subject [reply] hdr_len total_len`` with its header block and payload."""
    hl = len(headers)
    if reply:
        return b"HPUB %b %b %d %d\r\n%b%b\r\n" % (
            subject,
            reply,
            hl,
            hl + len(payload),
            headers,
            payload,
        )
    return b"HPUB %b %d %d\r\n%b%b\r\n" % (subject, hl, hl + len(payload), headers, payload)


def pub_frame(subject: bytes, reply: bytes, payload: bytes) -> bytes:
    """``PUB subject [reply] len`` with its payload."""
    if reply:
        return b"PUB %b %b %d\r\n%b\r\n" % (subject, reply, len(payload), payload)
    return b"PUB %b %d\r\n%b\r\n" % (subject, len(payload), payload)


class FrameWriter:
    """Writes prebuilt frames into one connection's outbound buffer (see the module doc)."""

    __slots__ = ("_connected", "_kick", "_nc", "active")

    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        # nats-py's state for "connected" (neither connecting, reconnecting, draining nor
        # closed): one attribute read instead of three property calls on every frame.
        self._connected: object = getattr(type(nc), "CONNECTED", None)
        self.active = (
            seams_enabled()
            and self._connected is not None
            and all(hasattr(nc, a) for a in _WRITER_SEAMS)
        )
        """Whether the seam is used (False: `write` always returns False)."""
        self._kick: asyncio.Future[None] | None = None

    def write(self, frame: bytes) -> bool:
        """Queue `frame` for the flusher; False if the caller must use ``nc.publish``."""
        nc = self._nc
        if not self.active or nc._status != self._connected:
            return False
        try:
            task = nc._flusher_task
            queue = nc._flush_queue
            if task is None or task.done() or queue is None:
                return False
            size = nc._pending_data_size + len(frame)
            if nc._max_pending_size > 0 and size > nc._max_pending_size:
                return False
            nc._pending.append(frame)
            nc._pending_data_size = size
            if queue.empty():
                kick = self._kick
                if kick is None:
                    # The flusher sets a kick's result unless it is done: one done
                    # future serves for every kick.
                    kick = self._kick = asyncio.get_running_loop().create_future()
                    kick.set_result(None)
                queue.put_nowait(kick)
        except (AttributeError, TypeError, asyncio.QueueFull):
            self.active = False  # nats-py changed shape: its public path from now on
            return False
        nc.stats["out_msgs"] += 1
        return True


def frame_writer(nc: NATS) -> FrameWriter:
    """The connection's `FrameWriter` (made on first use)."""
    w = getattr(nc, _WRITER_ATTR, None)
    if isinstance(w, FrameWriter):
        return w
    w = FrameWriter(nc)
    setattr(nc, _WRITER_ATTR, w)
    return w
