"""The [[areas]], [[gateways]], [[routes]], [notify], [[oncall]] and [[users]] of site.toml."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Collection
from pathlib import Path

from config.model import (
    AREA_KINDS,
    GATEWAY_KINDS,
    GATEWAY_PROTOCOLS,
    PRIORITIES,
    ROLES,
    ROUTE_CHANNELS,
    WEBHOOK_FORMATS,
    WEEKDAYS,
    Area,
    Building,
    Gateway,
    NotifySettings,
    OnCallShift,
    Route,
    SiteNotify,
    User,
)
from config.toml_table import TomlTable, UniqueIds
from config.values import (
    Endpoint,
    parse_clock,
    parse_email,
    parse_host,
    parse_payload,
    parse_url,
)

_DTU_ONLY = ("registration", "registration_format", "heartbeat", "heartbeat_format")
_TCP_ONLY = ("host", "port")
_PHONE = re.compile(r"\+?[0-9]{5,15}")


def parse_phone(text: str) -> str:
    """A phone number for SMS: 5..15 digits, optionally after a +."""
    if not _PHONE.fullmatch(text):
        raise ValueError(f"must be a phone number (5..15 digits, optional +), got {text!r}")
    return text


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
        contacts = _contacts(table, "contacts", parse_phone)
        if channel == "sms" and table.data.get("contacts", []) == []:
            table.error("contacts", "an sms route needs its phone numbers")
        elif channel and channel != "sms" and table.has("contacts"):
            table.error("contacts", "is only for sms routes (the phones the gateway texts)")
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
                contacts=contacts,
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


def _contacts(table: TomlTable, key: str, parse: Callable[[str], str]) -> tuple[str, ...]:
    """An optional array of strings, each passed through `parse`; duplicates are errors."""
    found: list[str] = []
    for index, item in enumerate(table.array(key)):
        try:
            if not isinstance(item, str):
                raise ValueError(f"must be a string, got {type(item).__name__}")
            contact = parse(item)
            if contact in found:
                raise ValueError(f"{contact} is listed twice")
            found.append(contact)
        except ValueError as problem:
            table.log.toml((*table.path, key, index), str(problem))
    return tuple(found)


def read_notify(root: TomlTable, folder: Path, routes: Collection[Route]) -> SiteNotify:
    """The optional [notify] table and every [[oncall]] shift (routes must be read first)."""
    return SiteNotify(_read_settings(root, folder), _read_oncall(root, routes))


def _read_settings(root: TomlTable, folder: Path) -> NotifySettings:
    table = root.table("notify")
    defaults = NotifySettings()
    if table is None:
        return defaults
    host = table.text_as("smtp_host", parse_host, required=False) or defaults.smtp_host
    starttls = table.raw("smtp_starttls")
    if starttls is not None and not isinstance(starttls, bool):
        table.error("smtp_starttls", f"must be true or false, got {starttls!r}")
    user = table.text_as("smtp_user", _smtp_user, required=False)
    password_file = _password_file(table, folder)
    if table.has("smtp_user") != table.has("smtp_password_file"):
        missing = "smtp_user" if table.has("smtp_password_file") else "smtp_password_file"
        table.error(None, f"{missing} is missing: smtp_user and smtp_password_file go together")
    settings = NotifySettings(
        smtp_host=host,
        smtp_port=table.integer("smtp_port", 1, 65535, defaults.smtp_port),
        smtp_starttls=starttls is True,
        smtp_user=user,
        smtp_password_file=password_file,
        from_address=table.text_as("from_address", parse_email, required=False)
        or defaults.from_address,
        rate_per_recipient_per_hour=table.integer(
            "rate_per_recipient_per_hour", 1, 3600, defaults.rate_per_recipient_per_hour
        ),
        flood_window_s=table.integer("flood_window_s", 1, 86400, defaults.flood_window_s),
        flood_threshold=table.integer("flood_threshold", 1, 10000, defaults.flood_threshold),
        retry_base_s=table.integer("retry_base_s", 1, 3600, defaults.retry_base_s),
        retry_max_attempts=table.integer("retry_max_attempts", 1, 100, defaults.retry_max_attempts),
    )
    table.finish()
    return settings


def _smtp_user(text: str) -> str:
    if not text or not text.isprintable() or text != text.strip():
        raise ValueError(f"must be a printable user name without spaces at the ends, got {text!r}")
    return text


def _password_file(table: TomlTable, folder: Path) -> Path | None:
    """The SMTP password file: it must exist and be readable by its owner only."""
    text = table.text_as("smtp_password_file", str, required=False)
    if text is None:
        return None
    path = folder / text
    if not path.is_file():
        table.error("smtp_password_file", f"file {text} does not exist (relative to {folder})")
        return None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        mode = stat.S_IMODE(path.stat().st_mode)
        table.error(
            "smtp_password_file", f"{text} has mode {mode:04o}: it must be 0600 (owner only)"
        )
    return path


def _read_oncall(root: TomlTable, routes: Collection[Route]) -> tuple[OnCallShift, ...]:
    by_id = {route.id: route for route in routes}
    shifts: list[OnCallShift] = []
    for table in root.tables("oncall"):
        route_id = table.ident("route")
        route = by_id.get(route_id)
        if route_id and route is None:
            table.error("route", f"unknown route {route_id}")
        contacts: tuple[str, ...] = ()
        if route is None or not route.channel:  # reported already: the contacts cannot be judged
            table.raw("contacts")
        elif not table.has("contacts"):
            table.error("contacts", "is required")
        else:
            parse = parse_email if route.channel == "email" else parse_phone
            contacts = _contacts(table, "contacts", parse)
            if table.data["contacts"] == []:
                table.error("contacts", "a shift needs at least one contact")
        days = _days(table)
        start = table.text_as("start", lambda text: parse_clock(text, end=False))
        end = table.text_as("end", lambda text: parse_clock(text, end=True))
        if start is not None and end is not None and start == end:
            table.error("end", "a shift cannot end when it starts (00:00..24:00 is a whole day)")
        table.finish()
        shifts.append(OnCallShift(route_id, contacts, days, start or 0, end or 0))
    return tuple(shifts)


def _days(table: TomlTable) -> tuple[int, ...]:
    days: list[int] = []
    if not table.has("days"):
        table.raw("days", required=True)
    items = table.array("days")
    for index, item in enumerate(items):
        if item not in WEEKDAYS:
            allowed = " | ".join(WEEKDAYS)
            table.log.toml((*table.path, "days", index), f"must be one of {allowed}, got {item!r}")
        elif WEEKDAYS.index(str(item)) in days:
            table.log.toml((*table.path, "days", index), f"{item} is listed twice")
        else:
            days.append(WEEKDAYS.index(str(item)))
    if isinstance(table.data.get("days"), list) and not items:
        table.error("days", "a shift needs at least one day")
    return tuple(sorted(days))
