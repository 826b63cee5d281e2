"""aether's inbound frame parser: raw subscriptions' messages without nats-py's per-message
path.

nats-py's reader hands each chunk read from the socket to its protocol parser
(``Client._ps.parse``), which matches a regular expression per frame and awaits
``Client._process_msg`` per message. `FastParser` is a drop-in subclass of that parser:
it finds ``MSG``/``HMSG`` frames by scanning for line ends, calls the raw handler of the
frame's subscription synchronously (guarded, see `aether._nats.raw`), and passes every
other message to ``_process_msg`` and every other frame (``INFO``, ``PING``, ``PONG``,
``+OK``, ``-ERR``) to nats-py's own handling, exactly as nats-py's parser does.

Seam: ``Client._ps`` (a ``nats.protocol.parser.Parser``) and its ``buf``, ``state``,
``needed``, ``header_needed`` and ``msg_arg``; `install` checks them and takes over the
old parser's state at its first chunk. Without them (or with ``AETHER_NATS_SEAMS=off``)
nats-py's parser stays and raw handlers are reached through ``_process_msg``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.errors import ProtocolError
from nats.protocol import parser as nats_parser

Deliver = Callable[[int, bytes, bytes, bytes, bytes | None], bool]
"""``deliver(sid, subject, reply, data, headers)``: True if a raw handler took it."""

_AWAITING_CONTROL_LINE = nats_parser.AWAITING_CONTROL_LINE
_AWAITING_MSG_PAYLOAD = nats_parser.AWAITING_MSG_PAYLOAD
_MAX_CONTROL_LINE = nats_parser.MAX_CONTROL_LINE_SIZE
_STATE = ("buf", "state", "needed", "header_needed", "msg_arg")


class FastParser(nats_parser.Parser):
    """nats-py's parser with a fast path for messages (see the module doc)."""

    def __init__(self, nc: NATS, deliver: Deliver, previous: Any) -> None:
        super().__init__(nc)
        self._deliver = deliver
        self._previous = previous  # its state is taken over at the first chunk

    def _take_over(self) -> None:
        prev, self._previous = self._previous, None
        if prev is None:
            return
        for name in _STATE:
            setattr(self, name, getattr(prev, name))
        if self.state == _AWAITING_MSG_PAYLOAD:
            arg = self.msg_arg
            self._pending = (arg["sid"], arg["subject"], arg["reply"])

    _pending: tuple[int, bytes, bytes] = (0, b"", b"")
    _generation = 0

    def reset(self) -> None:
        """nats-py resets its parser on a reconnect: drop what was half read."""
        super().reset()
        self._generation += 1

    async def parse(self, data: bytes = b"") -> None:
        """Parse `data` (and what is left of earlier chunks), dispatching every frame."""
        if self._previous is not None:
            self._take_over()
        if self.buf:
            data = bytes(self.buf) + data
            self.buf = bytearray()
        generation = self._generation
        nc: Any = self.nc
        deliver = self._deliver
        pos = 0
        n = len(data)
        try:
            while pos < n:
                if self.state == _AWAITING_MSG_PAYLOAD:
                    size, hsize = self.needed, self.header_needed
                    if n - pos < size + 2:
                        break
                    sid, subject, reply = self._pending
                    self.state = _AWAITING_CONTROL_LINE
                    self.header_needed = 0
                else:
                    end = data.find(b"\r\n", pos)
                    if end < 0:
                        if n - pos > _MAX_CONTROL_LINE:
                            raise ProtocolError("nats: control line too long")
                        break
                    first = data[pos]
                    if first == 0x4D and data.startswith(b"MSG ", pos):  # M
                        args = data[pos + 4 : end].split()
                        hsize = 0
                        if len(args) == 3:
                            subject, sid_b, size_b = args
                            reply = b""
                        elif len(args) == 4:
                            subject, sid_b, reply, size_b = args
                        else:
                            raise ProtocolError("nats: malformed MSG")
                    elif first == 0x48 and data.startswith(b"HMSG ", pos):  # H
                        args = data[pos + 5 : end].split()
                        if len(args) == 4:
                            subject, sid_b, hsize_b, size_b = args
                            reply = b""
                        elif len(args) == 5:
                            subject, sid_b, reply, hsize_b, size_b = args
                        else:
                            raise ProtocolError("nats: malformed MSG")
                        hsize = int(hsize_b)
                    else:
                        pos = await self._control(nc, data, pos, end)
                        if self._generation != generation:
                            return  # nats-py reset the parser meanwhile (reconnect)
                        continue
                    sid, size = int(sid_b), int(size_b)
                    pos = end + 2
                    if n - pos < size + 2:
                        # the payload is not all here yet: wait for the next chunk
                        self.state = _AWAITING_MSG_PAYLOAD
                        self.needed = size
                        self.header_needed = hsize
                        self._pending = (sid, subject, reply)
                        self.msg_arg = {"subject": subject, "sid": sid, "reply": reply}
                        break
                if hsize:
                    hdr: bytes | None = data[pos : pos + hsize]
                    payload = data[pos + hsize : pos + size]
                else:
                    hdr = None
                    payload = data[pos : pos + size]
                pos += size + 2
                if not deliver(sid, subject, reply, payload, hdr):
                    await nc._process_msg(sid, subject, reply, payload, hdr)
                    if self._generation != generation:
                        return
        finally:
            if self._generation == generation and pos < n:
                self.buf = bytearray(data[pos:])

    async def _control(self, nc: Any, data: bytes, pos: int, end: int) -> int:
        """Handle one control line (``+OK``, ``-ERR``, ``PING``, ``PONG``, ``INFO``)."""
        line = data[pos : end + 2]
        nxt = end + 2
        if nats_parser.OK_RE.match(line):
            return nxt
        m = nats_parser.ERR_RE.match(line)
        if m:
            await nc._process_err((m.groups()[0] or b"").decode().lower())
            return nxt
        if nats_parser.PING_RE.match(line):
            await nc._process_ping()
            return nxt
        if nats_parser.PONG_RE.match(line):
            await nc._process_pong()
            return nxt
        m = nats_parser.INFO_RE.match(line)
        if m:
            await nc._process_info(json.loads(m.groups()[0].decode()))
            return nxt
        raise ProtocolError("nats: unknown protocol")


def install(nc: NATS, deliver: Deliver) -> bool:
    """Give `nc` a `FastParser` that offers each message to `deliver` first; False when
    nats-py's parser is not of the expected shape (it is then left alone)."""
    current = getattr(nc, "_ps", None)
    if isinstance(current, FastParser):
        return True
    if type(current) is not nats_parser.Parser or not all(hasattr(current, a) for a in _STATE):
        return False
    nc._ps = FastParser(nc, deliver, current)
    return True
