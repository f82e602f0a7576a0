"""The [[areas]], [[gateways]], [[routes]] and [[users]] sections of site.toml."""

from __future__ import annotations

from collections.abc import Collection

from config.model import (
    AREA_KINDS,
    GATEWAY_KINDS,
    GATEWAY_PROTOCOLS,
    PRIORITIES,
    ROLES,
    ROUTE_CHANNELS,
    WEBHOOK_FORMATS,
    Area,
    Building,
    Gateway,
    Route,
    User,
)
from config.toml_table import TomlTable, UniqueIds
from config.values import Endpoint, parse_email, parse_host, parse_payload, parse_url

_DTU_ONLY = ("registration", "registration_format", "heartbeat", "heartbeat_format")
_TCP_ONLY = ("host", "port")


def read_areas(root: TomlTable, merchants: Collection[str]) -> tuple[Area, ...]:
    """Every [[areas]] entry; area ids and building ids are unique across the site."""
    areas: list[Area] = []
    ids = UniqueIds("areas")
    building_ids: dict[str, str] = {}
    for index, table in enumerate(root.tables("areas")):
        area_id = table.ident("id")
        ids.claim(table, "id", area_id, index, f"area {area_id}")
        name = table.text("name")
        kind = table.choice("kind", AREA_KINDS)
        merchant = table.optional_ident("merchant")
        if merchant is not None and merchant not in merchants:
            table.error("merchant", f"unknown merchant {merchant}")
        buildings: list[Building] = []
        for building in table.tables("buildings"):
            building_id = building.ident("id")
            if building_id in building_ids:
                owner = building_ids[building_id]
                building.error("id", f"building {building_id} is already defined in area {owner}")
            elif building_id:
                building_ids[building_id] = area_id
            buildings.append(Building(building_id, building.text("name")))
            building.finish()
        table.finish()
        areas.append(Area(area_id, name, kind, merchant, tuple(buildings)))
    return tuple(areas)


def read_gateways(root: TomlTable, areas: Collection[str]) -> tuple[Gateway, ...]:
    """Every [[gateways]] entry, with the fields its kind needs and no others."""
    gateways: list[Gateway] = []
    ids = UniqueIds("gateways")
    registrations = UniqueIds("gateways")
    endpoints = UniqueIds("gateways")
    for index, table in enumerate(root.tables("gateways")):
        gateway_id = table.ident("id")
        ids.claim(table, "id", gateway_id, index, f"gateway {gateway_id}")
        kind = table.choice("kind", GATEWAY_KINDS)
        area = table.ident("area")
        if area and area not in areas:
            table.error("area", f"unknown area {area}")
        protocol = table.choice("protocol", GATEWAY_PROTOCOLS)
        gateway = Gateway(gateway_id, kind, area, protocol)
        if kind == "dtu":
            gateway = _read_dtu(table, gateway)
            registrations.claim(
                table, "registration", gateway.registration, index, "this registration"
            )
            wrong: tuple[str, ...] = _TCP_ONLY
        elif kind == "modbus_tcp":
            gateway = _read_modbus_tcp(table, gateway)
            if gateway.host and gateway.port:
                endpoint = Endpoint(gateway.host, gateway.port)
                endpoints.claim(table, "port", endpoint, index, f"{endpoint}")
            wrong = _DTU_ONLY
        else:  # a bad kind is reported already; its fields cannot be judged
            for key in _DTU_ONLY + _TCP_ONLY:
                table.raw(key)
            wrong = ()
        for key in wrong:
            if table.has(key):
                table.raw(key)
                table.error(key, f"is not allowed on a {kind} gateway")
        table.finish()
        gateways.append(gateway)
    return tuple(gateways)


def _read_dtu(table: TomlTable, gateway: Gateway) -> Gateway:
    registration_format = table.choice("registration_format", ("ascii", "hex"), "ascii")
    registration = table.text_as(
        "registration", lambda text: parse_payload(text, registration_format)
    )
    heartbeat_format = table.choice("heartbeat_format", ("ascii", "hex"), "ascii")
    heartbeat = table.text_as(
        "heartbeat", lambda text: parse_payload(text, heartbeat_format), required=False
    )
    return Gateway(
        gateway.id,
        gateway.kind,
        gateway.area,
        gateway.protocol,
        registration=registration,
        heartbeat=heartbeat,
    )


def _read_modbus_tcp(table: TomlTable, gateway: Gateway) -> Gateway:
    host = table.text_as("host", parse_host)
    port = table.optional_integer("port", 1, 65535, required=True)
    return Gateway(gateway.id, gateway.kind, gateway.area, gateway.protocol, host=host, port=port)


def read_routes(root: TomlTable, areas: Collection[str]) -> tuple[Route, ...]:
    """Every [[routes]] entry; escalate_to must name another route, with no cycle."""
    routes: list[Route] = []
    ids = UniqueIds("routes")
    tables = root.tables("routes")
    for index, table in enumerate(tables):
        route_id = table.ident("id")
        ids.claim(table, "id", route_id, index, f"route {route_id}")
        channel = table.choice("channel", ROUTE_CHANNELS)
        target = ""
        if channel == "email":
            target = table.text_as("target", parse_email) or ""
        elif channel:
            target = table.text_as("target", lambda text: parse_url(text, ("http", "https"))) or ""
        else:  # a bad channel is reported already; its target and format cannot be judged
            table.raw("target")
            table.raw("format")
        form = table.choice("format", WEBHOOK_FORMATS, "json") if channel == "webhook" else None
        if channel and channel != "webhook" and table.has("format"):
            table.raw("format")
            table.error("format", "is only for webhook routes")
        route_areas = table.idents("areas")
        for position, area in enumerate(route_areas):
            if area not in areas:
                table.log.toml((*table.path, "areas", position), f"unknown area {area}")
        routes.append(
            Route(
                id=route_id,
                channel=channel,
                target=target,
                format=form,
                areas=route_areas,
                min_priority=table.choice("min_priority", PRIORITIES),
                repeat_min=table.optional_integer("repeat_min", 1, 10080),
                escalate_after_min=table.optional_integer("escalate_after_min", 1, 10080),
                escalate_to=table.optional_ident("escalate_to"),
            )
        )
        table.finish()
    _check_escalation(tables, routes)
    return tuple(routes)


def _check_escalation(tables: list[TomlTable], routes: list[Route]) -> None:
    by_id = {route.id: route for route in routes}
    for table, route in zip(tables, routes, strict=True):
        if (route.escalate_to is None) != (route.escalate_after_min is None):
            key = "escalate_to" if route.escalate_to is None else "escalate_after_min"
            table.error(key, "escalate_to and escalate_after_min go together")
        if route.escalate_to is None:
            continue
        if route.escalate_to == route.id:
            table.error("escalate_to", "a route cannot escalate to itself")
        elif route.escalate_to not in by_id:
            table.error("escalate_to", f"unknown route {route.escalate_to}")
        else:
            seen = {route.id}
            step: str | None = route.escalate_to
            while step is not None and step in by_id and step not in seen:
                seen.add(step)
                step = by_id[step].escalate_to
            if step == route.id:
                table.error("escalate_to", f"escalation from {route.id} loops back to it")


def read_users(root: TomlTable) -> tuple[User, ...]:
    """Every [[users]] entry; names are unique."""
    users: list[User] = []
    names = UniqueIds("users")
    for index, table in enumerate(root.tables("users")):
        name = table.ident("name")
        names.claim(table, "name", name, index, f"user {name}")
        role = table.choice("role", ROLES)
        display_name = table.text("display_name", default=name)
        table.finish()
        users.append(User(name, role, display_name))
    return tuple(users)
