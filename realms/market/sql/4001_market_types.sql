-- Realm market (seed 004, GOGOMARKET): the schema, its 26 enum types ("PostgreSQL ENUM
-- Types") and the helper functions every later market file uses. Tables start in 4002.
-- Readings of the seed's vague points: realms/market/SCHEMA_NOTES.md.

CREATE SCHEMA IF NOT EXISTS market;

-- User related
CREATE TYPE market.user_role_enum AS ENUM ('admin', 'buyer', 'seller', 'courier');
CREATE TYPE market.user_status_enum AS ENUM ('active', 'inactive', 'suspended', 'banned');
CREATE TYPE market.admin_role_enum AS ENUM
    ('super_admin', 'role_manager', 'accounting', 'technical_access');
CREATE TYPE market.address_type_enum AS ENUM ('delivery', 'billing');

-- Product related
CREATE TYPE market.product_status_enum AS ENUM
    ('draft', 'active', 'inactive', 'out_of_stock', 'discontinued');

-- Order related. order_status_enum's declaration order is the documented state order
-- (pending -> ... -> delivered); market.order_status_transition_allowed() (4006) relies on it.
CREATE TYPE market.order_status_enum AS ENUM
    ('pending', 'confirmed', 'processing', 'ready_for_pickup', 'picked_up', 'in_transit',
     'delivered', 'cancelled', 'refunded');
CREATE TYPE market.payment_status_enum AS ENUM
    ('pending', 'paid', 'failed', 'refunded', 'partially_refunded');
CREATE TYPE market.payment_method_enum AS ENUM ('cash', 'card', 'gogomoney', 'bank_transfer');
CREATE TYPE market.tracking_status_enum AS ENUM
    ('assigned', 'picked_up', 'in_transit', 'delivered', 'failed');

-- Financial related
CREATE TYPE market.transaction_type_enum AS ENUM
    ('deposit', 'withdrawal', 'purchase', 'refund', 'commission', 'payout', 'bonus');
CREATE TYPE market.commission_status_enum AS ENUM ('pending', 'paid', 'cancelled');
CREATE TYPE market.payout_status_enum AS ENUM
    ('pending', 'processing', 'completed', 'failed', 'cancelled');
CREATE TYPE market.payout_method_enum AS ENUM ('bank_transfer', 'gogomoney', 'cash');

-- Social related
CREATE TYPE market.story_type_enum AS ENUM ('image', 'video');
CREATE TYPE market.chat_type_enum AS ENUM ('direct', 'group', 'support');
CREATE TYPE market.chat_role_enum AS ENUM ('admin', 'member');
CREATE TYPE market.message_type_enum AS ENUM
    ('text', 'image', 'video', 'audio', 'file', 'location', 'product');

-- Review related
CREATE TYPE market.notification_type_enum AS ENUM
    ('order', 'message', 'review', 'promotion', 'system', 'payment');

-- Dispute related
CREATE TYPE market.dispute_type_enum AS ENUM
    ('product_issue', 'delivery_issue', 'payment_issue', 'other');
CREATE TYPE market.dispute_status_enum AS ENUM ('open', 'in_progress', 'resolved', 'closed');
CREATE TYPE market.return_status_enum AS ENUM
    ('requested', 'approved', 'rejected', 'in_transit', 'received', 'refunded');
CREATE TYPE market.return_condition_enum AS ENUM ('unopened', 'opened', 'used', 'damaged');
CREATE TYPE market.refund_method_enum AS ENUM ('original_payment', 'gogomoney', 'bank_transfer');

-- Promotion related
CREATE TYPE market.promo_type_enum AS ENUM ('percentage', 'fixed_amount', 'free_shipping');
CREATE TYPE market.promo_applicable_enum AS ENUM ('all', 'category', 'product', 'seller');

-- System related
CREATE TYPE market.setting_type_enum AS ENUM ('string', 'number', 'boolean', 'json');

-- ---------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------

-- "created_at and updated_at timestamps on all tables": every market table with updated_at
-- has a BEFORE UPDATE trigger trg_<table>_updated_at running this.
CREATE FUNCTION market.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- A user column that must name a user of one role (TG_ARGV[0] = column, TG_ARGV[1] = role),
-- e.g. products.seller_id -> a seller. Installed as BEFORE INSERT OR UPDATE OF <column>.
-- Raises check_violation, naming the column; NULL passes (optional references).
CREATE FUNCTION market.require_user_role() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_user_id bigint := (to_jsonb(NEW) ->> TG_ARGV[0])::bigint;
    v_role    market.user_role_enum;
BEGIN
    IF v_user_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT u.role INTO v_role FROM market.users u WHERE u.id = v_user_id;
    -- An unknown user is left to the foreign key, which names itself.
    IF FOUND AND v_role::text <> TG_ARGV[1] THEN
        RAISE EXCEPTION '%.% must be a user with role %, user % is %',
            TG_TABLE_NAME, TG_ARGV[0], TG_ARGV[1], v_user_id, v_role
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = TG_TABLE_NAME || '_' || TG_ARGV[0] || '_role';
    END IF;
    RETURN NEW;
END;
$$;

-- Append-only rows (order_status_history, wallet_transactions, audit_logs): UPDATE is refused,
-- except setting one of the columns named in TG_ARGV to NULL (what ON DELETE SET NULL of a
-- "who acted" reference does). DELETE stays possible (retention, cascades).
CREATE FUNCTION market.refuse_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_old jsonb := to_jsonb(OLD);
    v_new jsonb := to_jsonb(NEW);
    v_col text;
BEGIN
    FOREACH v_col IN ARRAY coalesce(TG_ARGV, '{}') LOOP
        IF v_new -> v_col = 'null'::jsonb THEN
            v_old := v_old - v_col;
            v_new := v_new - v_col;
        END IF;
    END LOOP;
    IF v_old IS DISTINCT FROM v_new THEN
        RAISE EXCEPTION '% rows are append-only', TG_TABLE_NAME
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only';
    END IF;
    RETURN NEW;
END;
$$;

-- A GPS position as a built-in point. Postgres points are (x, y), so the point is
-- (longitude, latitude). Raises invalid_parameter_value (22023) for a NULL or out-of-range
-- coordinate, so callers get one clear error for "invalid coordinates".
CREATE FUNCTION market.geo_point(p_latitude numeric, p_longitude numeric) RETURNS point
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF p_latitude IS NULL OR p_longitude IS NULL
       OR p_latitude NOT BETWEEN -90 AND 90 OR p_longitude NOT BETWEEN -180 AND 180 THEN
        RAISE EXCEPTION 'invalid coordinates: latitude % (-90..90), longitude % (-180..180)',
            p_latitude, p_longitude
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN point(p_longitude::float8, p_latitude::float8);
END;
$$;
