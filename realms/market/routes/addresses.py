"""/v1/market/addresses and /v1/market/delivery-zones: the caller's delivery and billing
addresses (each type's live addresses keep exactly one default, also under concurrent
changes), and which delivery zone (the GiST polygon index, market.delivery_zones_at) covers
an address or a position, with the tariff checkout would charge by."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

import asyncpg
from aiohttp import web
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.errors import BadRequest, Conflict, NotFound
from kernel.web.endpoints import all_or_none, endpoint
from kernel.web.keys import POOL
from realms.market.routes.access import me, path_id

routes = web.RouteTableDef()

TAG = "market addresses"
AddressType = Literal["delivery", "billing"]
Latitude = Annotated[float, Meta(ge=-90, le=90, description="degrees, -90..90")]
Longitude = Annotated[float, Meta(ge=-180, le=180, description="degrees, -180..180")]
Phone = Annotated[str, Meta(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164")]


Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"\S")]
Place = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"\S")]
Street = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"\S")]
Label = Annotated[str, Meta(max_length=50)]
Short = Annotated[str, Meta(max_length=100)]
Postal = Annotated[str, Meta(max_length=20)]
Note = Annotated[str, Meta(max_length=2000)]
# Coordinates come as a pair: both numbers, or both absent / null.
_PAIRED = all_or_none("latitude", "longitude")
_BOTH_OR_NEITHER = {"dependentRequired": {"latitude": ["longitude"], "longitude": ["latitude"]}}


class AddressBody(Struct, forbid_unknown_fields=True, kw_only=True):
    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (_PAIRED,)
    type: AddressType = "delivery"
    is_default: bool = False
    label: Label | None = None
    full_name: Name
    phone: Phone
    country: Place
    city: Place
    district: Short | None = None
    street: Street
    building: Label | None = None
    apartment: Label | None = None
    postal_code: Postal | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    delivery_instructions: Note | None = None


class AddressPatch(Struct, forbid_unknown_fields=True, kw_only=True):
    """Only the fields given change. `is_default: true` makes the address its type's default;
    `false` on the default is 409 (make another address the default instead). Coordinates
    change as a pair (both numbers, or both null to clear them)."""

    schema_rules: ClassVar[tuple[dict[str, Any], ...]] = (_PAIRED, _BOTH_OR_NEITHER)
    type: AddressType | UnsetType = UNSET
    is_default: bool | UnsetType = UNSET
    label: Label | UnsetType | None = UNSET
    full_name: Name | UnsetType = UNSET
    phone: Phone | UnsetType = UNSET
    country: Place | UnsetType = UNSET
    city: Place | UnsetType = UNSET
    district: Short | UnsetType | None = UNSET
    street: Street | UnsetType = UNSET
    building: Label | UnsetType | None = UNSET
    apartment: Label | UnsetType | None = UNSET
    postal_code: Postal | UnsetType | None = UNSET
    latitude: Latitude | UnsetType | None = UNSET
    longitude: Longitude | UnsetType | None = UNSET
    delivery_instructions: Note | UnsetType | None = UNSET


class AddressOut(Struct):
    id: int
    type: str
    is_default: bool
    label: str | None
    full_name: str
    phone: str
    country: str
    city: str
    district: str | None
    street: str
    building: str | None
    apartment: str | None
    postal_code: str | None
    latitude: float | None
    longitude: float | None
    delivery_instructions: str | None
    created_at: datetime
    updated_at: datetime


class AddressesQuery(Struct, kw_only=True):
    type: AddressType | None = None


class TariffOut(Struct):
    id: int
    name: str
    base_cost: Decimal
    cost_per_km: Decimal
    cost_per_kg: Decimal
    min_order_amount: Decimal
    free_delivery_threshold: Decimal | None
    estimated_hours: int | None


class ZoneOut(Struct):
    id: int
    name: str
    city: str
    description: str | None
    tariffs: list[TariffOut]  # its active tariffs, cheapest first (checkout takes the first)


class DeliveryOut(Struct):
    address_id: int
    covered: bool  # a zone covers the address (false too when it has no coordinates)
    zone: ZoneOut | None  # the zone checkout uses: the covering active zone of lowest id
    tariff: TariffOut | None  # the tariff checkout charges by: the zone's cheapest active one


class PositionQuery(Struct, kw_only=True):
    latitude: Latitude
    longitude: Longitude


_COLUMNS = (
    "type",
    "is_default",
    "label",
    "full_name",
    "phone",
    "country",
    "city",
    "district",
    "street",
    "building",
    "apartment",
    "postal_code",
    "latitude",
    "longitude",
    "delivery_instructions",
)
_ADDRESS = (
    "SELECT id, type::text AS type, is_default, label, full_name, phone, country, city,"
    " district, street, building, apartment, postal_code, latitude::float8 AS latitude,"
    " longitude::float8 AS longitude, delivery_instructions, created_at, updated_at"
    " FROM market.user_addresses"
)


def _coordinate(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value))


async def _lock_owner(conn: asyncpg.Connection, user: int) -> None:
    """Serialises the caller's address changes (the user row's lock), so concurrent changes
    of defaults see each other's result instead of racing on idx_addresses_one_default."""
    await conn.execute("SELECT 1 FROM market.users WHERE id = $1 FOR NO KEY UPDATE", user)


async def _clear_default(conn: asyncpg.Connection, user: int, kind: str, keep: int) -> None:
    await conn.execute(
        "UPDATE market.user_addresses SET is_default = false WHERE user_id = $1 AND type = $2"
        " AND is_default AND deleted_at IS NULL AND id <> $3",
        user,
        kind,
        keep,
    )


async def _keep_one_default(conn: asyncpg.Connection, user: int, kind: str) -> None:
    """A type whose live addresses have no default gets its newest as the default."""
    await conn.execute(
        "UPDATE market.user_addresses SET is_default = true WHERE id = ("
        "  SELECT id FROM market.user_addresses WHERE user_id = $1 AND type = $2"
        "   AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1)"
        " AND NOT EXISTS (SELECT 1 FROM market.user_addresses WHERE user_id = $1 AND type = $2"
        "   AND deleted_at IS NULL AND is_default)",
        user,
        kind,
    )


async def _one(conn: asyncpg.Connection | asyncpg.Pool, user: int, address: int) -> AddressOut:
    row = await conn.fetchrow(
        _ADDRESS + " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL", address, user
    )
    if row is None:
        raise NotFound(f"you have no address {address}")
    return AddressOut(**dict(row))


@endpoint(
    routes,
    "GET",
    "/v1/addresses",
    summary="The caller's addresses, defaults first, then newest first",
    tag=TAG,
    query=AddressesQuery,
    response=list[AddressOut],
    errors=(400, 401),
)
async def list_addresses(request: web.Request, query: AddressesQuery) -> list[AddressOut]:
    who = await me(request)
    rows = await request.app[POOL].fetch(
        _ADDRESS + " WHERE user_id = $1 AND deleted_at IS NULL"
        " AND ($2::market.address_type_enum IS NULL OR type = $2)"
        " ORDER BY type, is_default DESC, created_at DESC, id DESC LIMIT 200",
        who.id,
        query.type,
    )
    return [AddressOut(**dict(r)) for r in rows]


@endpoint(
    routes,
    "GET",
    "/v1/addresses/{address_id}",
    summary="One of the caller's addresses",
    tag=TAG,
    response=AddressOut,
    errors=(400, 401, 404),
)
async def get_address(request: web.Request) -> AddressOut:
    who = await me(request)
    return await _one(request.app[POOL], who.id, path_id(request, "address_id"))


@endpoint(
    routes,
    "POST",
    "/v1/addresses",
    summary="Add an address; the first of its type, or one with `is_default`, is the default",
    tag=TAG,
    body=AddressBody,
    response=AddressOut,
    status=201,
    errors=(400, 401),
)
async def create_address(request: web.Request, body: AddressBody) -> AddressOut:
    who = await me(request)
    if (body.latitude is None) != (body.longitude is None):
        raise BadRequest("invalid coordinates: give latitude and longitude together")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _lock_owner(conn, who.id)
        if body.is_default:
            await _clear_default(conn, who.id, body.type, 0)
        values = {name: getattr(body, name) for name in _COLUMNS}
        values["latitude"] = _coordinate(body.latitude)
        values["longitude"] = _coordinate(body.longitude)
        made = await conn.fetchval(
            f"INSERT INTO market.user_addresses (user_id, {', '.join(_COLUMNS)})"
            f" VALUES ($1, {', '.join(f'${i + 2}' for i in range(len(_COLUMNS)))}) RETURNING id",
            who.id,
            *values.values(),
        )
        await _keep_one_default(conn, who.id, body.type)
        return await _one(conn, who.id, made)


@endpoint(
    routes,
    "PATCH",
    "/v1/addresses/{address_id}",
    summary="Change some fields of one's address (409: un-defaulting the default)",
    tag=TAG,
    body=AddressPatch,
    response=AddressOut,
    errors=(400, 401, 404, 409),
)
async def update_address(request: web.Request, body: AddressPatch) -> AddressOut:
    who = await me(request)
    address = path_id(request, "address_id")
    given = {n: getattr(body, n) for n in _COLUMNS if getattr(body, n) is not UNSET}
    if ("latitude" in given) != ("longitude" in given) or (
        (given.get("latitude") is None) != (given.get("longitude") is None)
    ):
        raise BadRequest("invalid coordinates: change latitude and longitude together")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _lock_owner(conn, who.id)
        old = await conn.fetchrow(
            "SELECT type::text AS type, is_default FROM market.user_addresses"
            " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
            address,
            who.id,
        )
        if old is None:
            raise NotFound(f"you have no address {address}")
        kind = given.get("type", old["type"])
        moved = kind != old["type"]
        if given.get("is_default") is False and old["is_default"] and not moved:
            raise Conflict(
                "an address type keeps one default: make another address the default instead",
                details={"reason": "default_required"},
            )
        if given.get("is_default") is True:
            await _clear_default(conn, who.id, kind, address)
        else:  # leaving its type, it is not the new type's default (unless it is alone there)
            given["is_default"] = old["is_default"] and not moved
        for name in ("latitude", "longitude"):
            if name in given:
                given[name] = _coordinate(given[name])
        sets = ", ".join(f"{name} = ${i + 3}" for i, name in enumerate(given))
        await conn.execute(
            f"UPDATE market.user_addresses SET {sets} WHERE id = $1 AND user_id = $2",
            address,
            who.id,
            *given.values(),
        )
        await _keep_one_default(conn, who.id, old["type"])
        if moved:
            await _keep_one_default(conn, who.id, kind)
        return await _one(conn, who.id, address)


@endpoint(
    routes,
    "DELETE",
    "/v1/addresses/{address_id}",
    summary="Delete one's address (orders keep it); a deleted default passes to the newest",
    tag=TAG,
    errors=(400, 401, 404),
    status=204,
)
async def delete_address(request: web.Request) -> None:
    who = await me(request)
    address = path_id(request, "address_id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _lock_owner(conn, who.id)
        kind = await conn.fetchval(
            "UPDATE market.user_addresses SET deleted_at = now(), is_default = false"
            " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL RETURNING type::text",
            address,
            who.id,
        )
        if kind is None:
            raise NotFound(f"you have no address {address}")
        await _keep_one_default(conn, who.id, kind)


# -- delivery zones -----------------------------------------------------------------------------

# Active zones containing the position (the GiST index through market.delivery_zones_at), and
# their active tariffs cheapest first: checkout's choice is the first zone's first tariff.
_ZONES_AT = (
    "SELECT z.id, z.name, z.city, z.description FROM market.delivery_zones_at($1, $2) z"
    " ORDER BY z.id"
)
_TARIFFS = (
    "SELECT zone_id, id, name, base_cost, cost_per_km, cost_per_kg, min_order_amount,"
    " free_delivery_threshold, estimated_hours FROM market.delivery_tariffs"
    " WHERE zone_id = ANY ($1::bigint[]) AND is_active ORDER BY zone_id, base_cost, id"
)


async def zones_at(pool: asyncpg.Pool, latitude: Decimal, longitude: Decimal) -> list[ZoneOut]:
    zones = [
        ZoneOut(**dict(r), tariffs=[]) for r in await pool.fetch(_ZONES_AT, latitude, longitude)
    ]
    by_id = {z.id: z for z in zones}
    for t in await pool.fetch(_TARIFFS, list(by_id)):
        fields = dict(t)
        by_id[fields.pop("zone_id")].tariffs.append(TariffOut(**fields))
    return zones


@endpoint(
    routes,
    "GET",
    "/v1/addresses/{address_id}/delivery",
    summary="Which delivery zone covers one's address, with the tariff checkout charges by",
    tag=TAG,
    response=DeliveryOut,
    errors=(400, 401, 404),
)
async def address_delivery(request: web.Request) -> DeliveryOut:
    who = await me(request)
    address = path_id(request, "address_id")
    pool = request.app[POOL]
    row = await pool.fetchrow(
        "SELECT latitude, longitude FROM market.user_addresses"
        " WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
        address,
        who.id,
    )
    if row is None:
        raise NotFound(f"you have no address {address}")
    if row["latitude"] is None:
        return DeliveryOut(address, False, None, None)
    zones = await zones_at(pool, row["latitude"], row["longitude"])
    if not zones:
        return DeliveryOut(address, False, None, None)
    zone = zones[0]
    return DeliveryOut(address, True, zone, zone.tariffs[0] if zone.tariffs else None)


@endpoint(
    routes,
    "GET",
    "/v1/delivery-zones",
    summary="The active delivery zones covering a position, with their active tariffs",
    tag=TAG,
    query=PositionQuery,
    response=list[ZoneOut],
    errors=(400, 401),
)
async def zones_covering(request: web.Request, query: PositionQuery) -> list[ZoneOut]:
    await me(request)
    latitude, longitude = _coordinate(query.latitude), _coordinate(query.longitude)
    assert latitude is not None and longitude is not None
    return await zones_at(request.app[POOL], latitude, longitude)
