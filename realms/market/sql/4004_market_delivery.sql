-- Delivery system (seed 004, section 9): market.delivery_zones with its boundary polygon and
-- GiST index ("Geographic Indexes"), market.delivery_tariffs, and the point-in-zone functions.
-- The seed's GEOGRAPHY(POLYGON) is PostGIS; PostGIS is not installed here, so the boundary is
-- Postgres' built-in polygon with points (longitude, latitude) in degrees, and containment is
-- planar (polygon @> point). See SCHEMA_NOTES.md.

-- ---------------------------------------------------------------------------------------------
-- delivery_zones
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.delivery_zones (
    id           bigserial PRIMARY KEY,
    name         varchar(200) NOT NULL,
    description  text,
    city         varchar(100) NOT NULL,
    districts    jsonb,
    polygon      polygon,
    is_active    boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT delivery_zones_districts_array CHECK (jsonb_typeof(districts) = 'array'),
    -- A real area (3 or more vertices) whose every vertex is a valid (longitude, latitude).
    CONSTRAINT delivery_zones_polygon_valid
        CHECK (npoints(polygon) >= 3
               AND polygon(box(point(-180, -90), point(180, 90))) @> polygon)
);

CREATE INDEX idx_delivery_zones_city ON market.delivery_zones (city);
CREATE INDEX idx_delivery_zones_active ON market.delivery_zones (is_active);
CREATE INDEX idx_delivery_zones_polygon ON market.delivery_zones USING gist (polygon);

CREATE TRIGGER trg_delivery_zones_updated_at
    BEFORE UPDATE ON market.delivery_zones
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- Active zones whose boundary contains the position (edges count as inside), by id; invalid
-- coordinates raise 22023 through market.geo_point(). The built-in GiST opclass for polygons has no "contains point"
-- operator, so the index is searched with && against the point as a degenerate polygon and
-- each candidate is then checked exactly with @>. SQL and STABLE: inlined into the caller's
-- query, where the index scan shows.
CREATE FUNCTION market.delivery_zones_at(p_latitude numeric, p_longitude numeric)
RETURNS SETOF market.delivery_zones
LANGUAGE sql STABLE AS $$
    SELECT z.*
      FROM market.delivery_zones z
     WHERE z.polygon && polygon(box(market.geo_point(p_latitude, p_longitude),
                                    market.geo_point(p_latitude, p_longitude)))
       AND z.polygon @> market.geo_point(p_latitude, p_longitude)
       AND z.is_active
     ORDER BY z.id;
$$;

-- Is the position inside this zone's boundary? NULL when the zone is unknown or has no
-- boundary; invalid coordinates raise 22023. Ignores is_active (ask delivery_zones_at for
-- "where can we deliver").
CREATE FUNCTION market.point_in_zone(p_zone_id bigint, p_latitude numeric, p_longitude numeric)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT z.polygon @> market.geo_point(p_latitude, p_longitude)
      FROM market.delivery_zones z
     WHERE z.id = p_zone_id;
$$;

-- ---------------------------------------------------------------------------------------------
-- delivery_tariffs
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.delivery_tariffs (
    id                       bigserial PRIMARY KEY,
    zone_id                  bigint NOT NULL,
    name                     varchar(200) NOT NULL,
    base_cost                numeric(12, 2) NOT NULL,
    cost_per_km              numeric(12, 2) NOT NULL DEFAULT 0,
    cost_per_kg              numeric(12, 2) NOT NULL DEFAULT 0,
    min_order_amount         numeric(12, 2) NOT NULL DEFAULT 0,
    free_delivery_threshold  numeric(12, 2),
    estimated_hours          integer,
    is_active                boolean NOT NULL DEFAULT true,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT delivery_tariffs_zone_id_fkey FOREIGN KEY (zone_id)
        REFERENCES market.delivery_zones (id) ON DELETE CASCADE,
    CONSTRAINT delivery_tariffs_costs_non_negative
        CHECK (base_cost >= 0 AND cost_per_km >= 0 AND cost_per_kg >= 0),
    CONSTRAINT delivery_tariffs_min_order_amount_non_negative CHECK (min_order_amount >= 0),
    CONSTRAINT delivery_tariffs_free_delivery_threshold_non_negative
        CHECK (free_delivery_threshold >= 0),
    CONSTRAINT delivery_tariffs_estimated_hours_positive CHECK (estimated_hours > 0)
);

CREATE INDEX idx_delivery_tariffs_zone_id ON market.delivery_tariffs (zone_id);
CREATE INDEX idx_delivery_tariffs_active ON market.delivery_tariffs (is_active);

CREATE TRIGGER trg_delivery_tariffs_updated_at
    BEFORE UPDATE ON market.delivery_tariffs
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
