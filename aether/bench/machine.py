"""Where a run happened: CPU count, Python, platform, the NATS server's version."""

from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aether._nats.info import server_version_text
from aether.config import Settings

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS


@dataclass(frozen=True)
class Machine:
    """Where a run happened."""

    cpu_count: int | None
    python: str
    implementation: str
    platform: str
    nats_server: str | None
    aether: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)


def machine_info(nats_server: str | None = None) -> Machine:
    """CPU count, Python and platform of this machine; `nats_server` as found when connected."""
    from aether import __version__

    return Machine(
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        platform=platform.platform(terse=True),
        nats_server=nats_server,
        aether=__version__,
    )


async def nats_server_version(settings: Settings) -> str | None:
    """The version the NATS server announces; `NatsUnavailableError` when unreachable."""
    from aether.connect import connect

    nc = await connect(settings)
    try:
        return _server_version(nc)
    finally:
        await nc.close()


def _server_version(nc: NATS) -> str | None:
    """The version in the server's INFO."""
    return server_version_text(nc)
