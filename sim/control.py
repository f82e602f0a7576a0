"""The simulator's HTTP/JSON control API (Tornado): meter state, faults, commands and speed.

    GET    /healthz                      {"ok": true, "time": ..., "speed": ..., counts}
    GET    /meters/ID                    tags, relay, faults of one meter
    POST   /meters/ID/recharge           {"fen": 10000}
    POST   /meters/ID/relay              {"action": "open" | "close" | "auto"}
    POST   /meters/ID/load               {"kw": 3.5} or {"kw": null} (back to the profile)
    GET    /faults                       the active faults
    POST   /faults                       {"kind": ..., "meters": [...] | "gateway": ..., ...}
    DELETE /faults[?kind=K&meter=ID&gateway=G]
    GET    /speed, POST /speed           {"speed": 60}

Fault kinds and their fields: phase_loss (phases, residual), undervoltage (ratio), silent
(alias silence), corrupt (probability), slow (delay_ms), meter_fault, gateway_down (alias
gateway_outage; period_s and down_s make it flap). Each takes an optional duration_s.
Bad input is answered 400 with {"error": "..."} naming the field.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from config.values import Endpoint
from sim.faults import FaultError

if TYPE_CHECKING:
    from sim.runner import Simulator

KIND_ALIASES: Final = {
    "silence": "silent",
    "gateway_outage": "gateway_down",
    "flapping": "gateway_down",
}
METER_FAULTS: Final = ("phase_loss", "undervoltage", "silent", "corrupt", "slow", "meter_fault")


class BadRequest(ValueError):
    """Input the API refuses; the message names what is wrong."""


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Handler(tornado.web.RequestHandler):
    """Base handler: JSON in and out, 400 with a message for bad input."""

    def initialize(self, sim: Simulator) -> None:
        """Handlers share the simulator."""
        self.sim = sim

    def body(self) -> dict[str, Any]:
        """The JSON object in the request body."""
        try:
            data = json.loads(self.request.body or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"body: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise BadRequest("body: must be a JSON object")
        return data

    def reply(self, data: object, status: int = 200) -> None:
        """Send `data` as JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, ensure_ascii=False))

    def row(self, meter_id: str) -> int:
        """The fleet row of a meter id, or BadRequest."""
        try:
            return self.sim.site.meter_row(meter_id)
        except KeyError:
            raise BadRequest(f"meter: unknown meter {meter_id!r}") from None

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, BadRequest | FaultError | ValueError | IndexError):
            self.reply({"error": str(e)}, 400)
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are JSON too."""
        self.finish(json.dumps({"error": self._reason}))


class Health(Handler):
    """GET /healthz."""

    def get(self) -> None:
        """Liveness, simulated time, speed and connection counts."""
        self.reply(
            {
                "ok": True,
                "time": self.sim.fleet.now,
                "speed": self.sim.clock.factor,
                "meters": len(self.sim.fleet),
                **self.sim.status(),
            }
        )


class MeterState(Handler):
    """GET /meters/ID."""

    def get(self, meter_id: str) -> None:
        """The meter's tags (primary values), relay state and active faults."""
        row = self.row(meter_id)
        fleet = self.sim.fleet
        tags = {name: _json_value(column[0]) for name, column in fleet.tags([row]).items()}
        faults = [f for f in fleet.faults.describe() if f.get("meter") == meter_id]
        meter = self.sim.site.meters[row]
        if meter.gateway is not None:
            faults += [f for f in fleet.faults.describe() if f.get("gateway") == meter.gateway]
        self.reply(
            {
                "id": meter_id,
                "row": row,
                "model": meter.model,
                "gateway": meter.gateway,
                "time": fleet.now,
                "relay": "closed" if fleet.closed[row] else "open",
                "forced": bool(fleet.forced[row]),
                "tags": tags,
                "faults": faults,
            }
        )


class MeterCommand(Handler):
    """POST /meters/ID/recharge|relay|load."""

    def post(self, meter_id: str, command: str) -> None:
        """Carry out the command and answer with the meter's new state in brief."""
        row = self.row(meter_id)
        body = self.body()
        commands = self.sim.commands
        if command == "recharge":
            commands.recharge(row, _field(body, "fen", int))
        elif command == "relay":
            action = _field(body, "action", str)
            if action not in ("open", "close", "auto"):
                raise BadRequest(f"action: must be open, close or auto, got {action!r}")
            commands.relay(row, action)
        else:
            if "kw" not in body:
                raise BadRequest("kw: required (a number ≥ 0, or null for the load profile)")
            kw = body["kw"]
            commands.set_load(row, None if kw is None else float(_field(body, "kw", float)))
        fleet = self.sim.fleet
        self.reply(
            {
                "id": meter_id,
                "relay": "closed" if fleet.closed[row] else "open",
                "balance_fen": int(fleet.money.balance_fen[row]),
            }
        )


class Faults(Handler):
    """GET, POST and DELETE /faults."""

    def get(self) -> None:
        """The active faults."""
        self.reply({"faults": self.sim.fleet.faults.describe()})

    def post(self) -> None:
        """Inject a fault."""
        body = self.body()
        kind = KIND_ALIASES.get(str(body.get("kind")), body.get("kind"))
        faults = self.sim.fleet.faults
        duration = _optional(body, "duration_s")
        if kind == "gateway_down":
            gateway = _field(body, "gateway", str)
            faults.gateway_outage(
                gateway,
                duration_s=duration,
                period_s=_optional(body, "period_s"),
                down_s=_optional(body, "down_s"),
            )
            self.sim.apply_outages()
        elif kind in METER_FAULTS:
            rows = self._meters(body)
            if kind == "phase_loss":
                residual = _optional(body, "residual")
                faults.phase_loss(
                    rows,
                    _field(body, "phases", str),
                    duration_s=duration,
                    residual=0.02 if residual is None else residual,
                )
            elif kind == "undervoltage":
                ratio = _optional(body, "ratio")
                faults.undervoltage(rows, 0.8 if ratio is None else ratio, duration_s=duration)
            elif kind == "silent":
                faults.silence(rows, duration_s=duration)
            elif kind == "corrupt":
                faults.corrupt_frames(rows, _field(body, "probability", float), duration_s=duration)
            elif kind == "slow":
                faults.slow_replies(rows, _field(body, "delay_ms", float), duration_s=duration)
            else:
                faults.meter_fault(rows, duration_s=duration)
        else:
            known = ", ".join((*METER_FAULTS, "gateway_down", *KIND_ALIASES))
            raise BadRequest(f"kind: {body.get('kind')!r} is not one of {known}")
        self.reply({"faults": faults.describe()}, 201)

    def delete(self) -> None:
        """End faults: all, or of one kind, meter or gateway."""
        kind_arg = self.get_query_argument("kind", None)
        kind = KIND_ALIASES.get(kind_arg, kind_arg) if kind_arg else None
        meter = self.get_query_argument("meter", None)
        gateway = self.get_query_argument("gateway", None)
        faults = self.sim.fleet.faults
        if gateway is not None and gateway not in faults.gateway_ids:
            raise BadRequest(f"gateway: unknown gateway {gateway!r}")
        rows = None if meter is None else self.row(meter)
        faults.clear(kind, rows, None if gateway is None else [gateway])  # type: ignore[arg-type]
        self.sim.apply_outages()
        self.reply({"faults": faults.describe()})

    def _meters(self, body: dict[str, Any]) -> list[int]:
        names = body.get("meters", [body["meter"]] if "meter" in body else None)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise BadRequest("meters: a non-empty list of meter ids (or meter: one id) expected")
        return [self.row(name) for name in names]


class Speed(Handler):
    """GET and POST /speed."""

    def get(self) -> None:
        """The time acceleration."""
        self.reply({"speed": self.sim.clock.factor, "time": self.sim.clock.time()})

    def post(self) -> None:
        """Set the time acceleration (simulated seconds per real second)."""
        speed = _field(self.body(), "speed", float)
        if not math.isfinite(speed) or not 0 < speed <= 100_000:
            raise BadRequest(f"speed: must be within (0, 100000], got {speed}")
        self.sim.set_speed(speed)
        self.get()


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    if name not in body:
        raise BadRequest(f"{name}: required")
    value = body[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise BadRequest(f"{name}: must be a {kind.__name__}, got {value!r}")
    return value


def _optional(body: dict[str, Any], name: str) -> float | None:
    return None if body.get(name) is None else float(_field(body, name, float))


def application(sim: Simulator) -> tornado.web.Application:
    """The Tornado application of the control API."""
    args = {"sim": sim}
    return tornado.web.Application(
        [
            (r"/healthz", Health, args),
            (r"/meters/([^/]+)", MeterState, args),
            (r"/meters/([^/]+)/(recharge|relay|load)", MeterCommand, args),
            (r"/faults", Faults, args),
            (r"/speed", Speed, args),
        ]
    )


class ControlServer:
    """The control API's HTTP server on an endpoint (port 0 picks a free port)."""

    def __init__(self, sim: Simulator, endpoint: Endpoint) -> None:
        """Serve `sim`'s control API on `endpoint` once started."""
        self.sim = sim
        self.endpoint = endpoint
        self.port = endpoint.port
        self._server: HTTPServer | None = None

    async def start(self) -> None:
        """Listen."""
        sockets = bind_sockets(self.endpoint.port, self.endpoint.host)
        self.port = sockets[0].getsockname()[1]
        self._server = HTTPServer(application(self.sim))
        self._server.add_sockets(sockets)

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None
