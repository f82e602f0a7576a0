"""The core's remote directory still routes DL/T 645 meters through its own dial-in side."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from config import load_site
from server.acquisition.channels import ChannelDirectory, Dlt645Route
from server.scaleout.remote import RemoteDirectory

SMALL = Path(__file__).resolve().parents[2] / "config" / "examples" / "small"


class _Port:
    async def request_dlt645(self, gateway_id: str, frame: Any) -> Any:
        raise AssertionError("not called")

    async def broadcast_dlt645(self, gateway_id: str, frame: Any) -> None:
        raise AssertionError("not called")


def test_dlt645_routes_come_from_the_core() -> None:
    site = load_site(SMALL)
    route = Dlt645Route("D0001", "GW002", "000000000011", _Port())
    local = ChannelDirectory({}, {}, dlt645={"D0001": route})
    none = cast(Any, None)
    remote = RemoteDirectory(site, ["GW003"], none, none, none, local=lambda: local)
    assert remote.dlt645_route("D0001") is route
    assert remote.dlt645_route("P0001") is None
    without_core = RemoteDirectory(site, ["GW003"], none, none, none)
    assert without_core.dlt645_route("D0001") is None
