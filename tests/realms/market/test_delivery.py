"""Delivery zones (4004): the boundary is a built-in polygon of (longitude, latitude) with a
GiST index; market.delivery_zones_at() and market.point_in_zone() answer "which zone is this
position in" exactly, through the index, and refuse invalid coordinates."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from tests.realms.market.world import D, World, rejected

# An L-shaped zone: the unit square (69..70, 41..42) without its north-east quarter.
L_SHAPE = asyncpg.Polygon(
    (69.0, 41.0), (70.0, 41.0), (70.0, 41.5), (69.5, 41.5), (69.5, 42.0), (69.0, 42.0)
)


async def zones_at(w: World, lat: Decimal, lon: Decimal) -> list[int]:
    rows = await w.db.fetch("SELECT id FROM market.delivery_zones_at($1, $2)", lat, lon)
    return [r["id"] for r in rows]


async def test_geo_point_is_longitude_then_latitude(txworld: World) -> None:
    point = await txworld.db.fetchval("SELECT market.geo_point(41.3111, 69.2797)")
    assert (point.x, point.y) == (69.2797, 41.3111)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(D("90.0001"), D(0)), (D("-91"), D(0)), (D(0), D("180.0001")), (D(0), D(-181)),
     (None, D(0)), (D(0), None)],
)  # fmt: skip
async def test_invalid_coordinates_are_refused(
    txworld: World, lat: Decimal | None, lon: Decimal | None
) -> None:
    error = await rejected(
        txworld.db,
        txworld.db.fetch("SELECT * FROM market.delivery_zones_at($1, $2)", lat, lon),
        asyncpg.InvalidParameterValueError,
    )
    assert "invalid coordinates" in str(error)


async def test_a_position_inside_a_zone_finds_it_and_outside_finds_none(txworld: World) -> None:
    zone = await txworld.zone()
    assert await zones_at(txworld, D("41.3111"), D("69.2797")) == [zone]
    assert await zones_at(txworld, D("39.6542"), D("66.9597")) == []  # Samarkand


async def test_the_boundary_counts_as_inside(txworld: World) -> None:
    zone = await txworld.zone()
    assert await zones_at(txworld, D(41), D("69.5")) == [zone]
    assert await zones_at(txworld, D(42), D(70)) == [zone]


async def test_containment_is_exact_not_by_bounding_box(txworld: World) -> None:
    zone = await txworld.zone(polygon=L_SHAPE)
    assert await zones_at(txworld, D("41.25"), D("69.25")) == [zone]
    assert await zones_at(txworld, D("41.75"), D("69.75")) == []  # in the box, not the L


async def test_inactive_zones_and_zones_without_boundary_are_not_found(txworld: World) -> None:
    await txworld.zone(is_active=False)
    await txworld.zone(polygon=None)
    assert await zones_at(txworld, D("41.3"), D("69.3")) == []


async def test_overlapping_zones_are_all_found_by_id(txworld: World) -> None:
    first = await txworld.zone()
    second = await txworld.zone(polygon=L_SHAPE)
    assert await zones_at(txworld, D("41.2"), D("69.2")) == [first, second]


async def test_point_in_zone(txworld: World) -> None:
    zone = await txworld.zone(polygon=L_SHAPE, is_active=False)
    no_boundary = await txworld.zone(polygon=None)
    check = "SELECT market.point_in_zone($1, $2, $3)"
    assert await txworld.db.fetchval(check, zone, D("41.25"), D("69.25")) is True
    assert await txworld.db.fetchval(check, zone, D("41.75"), D("69.75")) is False
    assert await txworld.db.fetchval(check, no_boundary, D(41), D(69)) is None
    assert await txworld.db.fetchval(check, 2_000_000_000, D(41), D(69)) is None
    await rejected(
        txworld.db,
        txworld.db.fetchval(check, zone, D(95), D(69)),
        asyncpg.InvalidParameterValueError,
    )


async def test_zone_lookup_uses_the_gist_index(txworld: World) -> None:
    for _ in range(3):
        await txworld.zone()
    await txworld.db.execute("SET LOCAL enable_seqscan = off")
    plan = "\n".join(
        r[0]
        for r in await txworld.db.fetch(
            "EXPLAIN SELECT id FROM market.delivery_zones_at(41.3, 69.3)"
        )
    )
    assert "idx_delivery_zones_polygon" in plan
    valid = await txworld.db.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'market.idx_delivery_zones_polygon'"
        "::regclass"
    )
    assert valid is True
