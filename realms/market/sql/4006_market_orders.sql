-- Orders and transactions (seed 004, section 3): market.orders, order_items,
-- order_status_history, order_tracking; and promo_code_usage (section 11), which needs orders.
-- Rules kept here:
--   * the documented state order of orders.status (market.order_status_transition_allowed);
--   * every status an order takes (on INSERT and on each change) is written to
--     order_status_history by a trigger on orders, in the same transaction;
--   * the delivery address is the buyer's, the items are the seller's products, the tracking
--     courier is the order's courier;
--   * promo code usage is counted and limited under concurrency.

-- ---------------------------------------------------------------------------------------------
-- orders
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.orders (
    id                       bigserial PRIMARY KEY,
    order_number             varchar(50) NOT NULL,
    buyer_id                 bigint NOT NULL,
    seller_id                bigint NOT NULL,
    courier_id               bigint,
    status                   market.order_status_enum NOT NULL DEFAULT 'pending',
    payment_status           market.payment_status_enum NOT NULL DEFAULT 'pending',
    payment_method           market.payment_method_enum NOT NULL,
    subtotal                 numeric(12, 2) NOT NULL,
    discount_amount          numeric(12, 2) NOT NULL DEFAULT 0,
    tax_amount               numeric(12, 2) NOT NULL DEFAULT 0,
    shipping_cost            numeric(12, 2) NOT NULL DEFAULT 0,
    commission_amount        numeric(12, 2) NOT NULL DEFAULT 0,
    total_amount             numeric(12, 2) NOT NULL,
    currency                 varchar(3) NOT NULL DEFAULT 'UZS',
    promo_code_id            bigint,
    delivery_address_id      bigint NOT NULL,
    delivery_zone_id         bigint,
    estimated_delivery_date  date,
    actual_delivery_date     timestamptz,
    notes                    text,
    cancellation_reason      text,
    cancelled_by             bigint,
    cancelled_at             timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    deleted_at               timestamptz,

    CONSTRAINT orders_buyer_id_fkey FOREIGN KEY (buyer_id) REFERENCES market.users (id),
    CONSTRAINT orders_seller_id_fkey FOREIGN KEY (seller_id) REFERENCES market.users (id),
    CONSTRAINT orders_courier_id_fkey FOREIGN KEY (courier_id) REFERENCES market.users (id),
    CONSTRAINT orders_promo_code_id_fkey FOREIGN KEY (promo_code_id)
        REFERENCES market.promo_codes (id),
    CONSTRAINT orders_delivery_address_id_fkey FOREIGN KEY (delivery_address_id)
        REFERENCES market.user_addresses (id),
    -- The delivery address is one of the buyer's addresses.
    CONSTRAINT orders_delivery_address_is_buyers FOREIGN KEY (delivery_address_id, buyer_id)
        REFERENCES market.user_addresses (id, user_id),
    CONSTRAINT orders_delivery_zone_id_fkey FOREIGN KEY (delivery_zone_id)
        REFERENCES market.delivery_zones (id),
    CONSTRAINT orders_cancelled_by_fkey FOREIGN KEY (cancelled_by)
        REFERENCES market.users (id) ON DELETE SET NULL,
    -- Targets of the "same buyer/seller as the order" keys of reviews, returns, commissions
    -- and promo_code_usage.
    CONSTRAINT orders_id_buyer_id_key UNIQUE (id, buyer_id),
    CONSTRAINT orders_id_seller_id_key UNIQUE (id, seller_id),
    CONSTRAINT orders_order_number_not_blank CHECK (order_number ~ '\S'),
    CONSTRAINT orders_buyer_is_not_seller CHECK (buyer_id <> seller_id),
    CONSTRAINT orders_amounts_non_negative
        CHECK (subtotal >= 0 AND discount_amount >= 0 AND tax_amount >= 0
               AND shipping_cost >= 0 AND commission_amount >= 0 AND total_amount >= 0),
    CONSTRAINT orders_currency_format CHECK (currency ~ '^[A-Z]{3}$')
);

CREATE UNIQUE INDEX idx_orders_number ON market.orders (order_number);
CREATE INDEX idx_orders_buyer_id ON market.orders (buyer_id);
CREATE INDEX idx_orders_seller_id ON market.orders (seller_id);
CREATE INDEX idx_orders_courier_id ON market.orders (courier_id);
CREATE INDEX idx_orders_status ON market.orders (status);
CREATE INDEX idx_orders_payment_status ON market.orders (payment_status);
CREATE INDEX idx_orders_created ON market.orders (created_at DESC);
-- "Order status and dates for dashboard queries" (Composite Indexes).
CREATE INDEX idx_orders_status_created ON market.orders (status, created_at DESC);
CREATE INDEX idx_orders_promo_code_id ON market.orders (promo_code_id)
    WHERE promo_code_id IS NOT NULL;
CREATE INDEX idx_orders_delivery_address_id ON market.orders (delivery_address_id);
CREATE INDEX idx_orders_delivery_zone_id ON market.orders (delivery_zone_id)
    WHERE delivery_zone_id IS NOT NULL;
CREATE INDEX idx_orders_cancelled_by ON market.orders (cancelled_by)
    WHERE cancelled_by IS NOT NULL;

CREATE TRIGGER trg_orders_updated_at
    BEFORE UPDATE ON market.orders
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
CREATE TRIGGER trg_orders_seller_role
    BEFORE INSERT OR UPDATE OF seller_id ON market.orders
    FOR EACH ROW EXECUTE FUNCTION market.require_user_role('seller_id', 'seller');
CREATE TRIGGER trg_orders_courier_role
    BEFORE INSERT OR UPDATE OF courier_id ON market.orders
    FOR EACH ROW EXECUTE FUNCTION market.require_user_role('courier_id', 'courier');

-- The documented state order: pending -> confirmed -> processing -> ready_for_pickup ->
-- picked_up -> in_transit -> delivered, one step at a time; any state before delivered may be
-- cancelled; delivered and cancelled orders may be refunded; refunded is final. Staying in
-- the same state is not a transition and is allowed.
CREATE FUNCTION market.order_status_transition_allowed(
    p_from market.order_status_enum, p_to market.order_status_enum
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_from = p_to THEN true
        WHEN p_to = 'cancelled' THEN p_from NOT IN ('delivered', 'cancelled', 'refunded')
        WHEN p_to = 'refunded' THEN p_from IN ('delivered', 'cancelled')
        ELSE (p_from, p_to) IN (('pending', 'confirmed'), ('confirmed', 'processing'),
                                ('processing', 'ready_for_pickup'),
                                ('ready_for_pickup', 'picked_up'), ('picked_up', 'in_transit'),
                                ('in_transit', 'delivered'))
    END;
$$;

-- Refuses an illegal status change (check_violation, constraint orders_status_transition)
-- and stamps cancelled_at / actual_delivery_date when the caller left them NULL.
CREATE FUNCTION market.guard_order_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NOT market.order_status_transition_allowed(OLD.status, NEW.status)
    THEN
        RAISE EXCEPTION 'illegal order status transition: % -> %', OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'orders_status_transition';
    END IF;
    IF NEW.status = 'cancelled' AND NEW.cancelled_at IS NULL THEN
        NEW.cancelled_at := now();
    END IF;
    IF NEW.status = 'delivered' AND NEW.actual_delivery_date IS NULL THEN
        NEW.actual_delivery_date := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_orders_status_guard
    BEFORE INSERT OR UPDATE OF status ON market.orders
    FOR EACH ROW EXECUTE FUNCTION market.guard_order_status();

-- ---------------------------------------------------------------------------------------------
-- order_status_history: every status an order takes, written by the trigger below
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.order_status_history (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    status      market.order_status_enum NOT NULL,
    notes       text,
    changed_by  bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT order_status_history_order_id_fkey FOREIGN KEY (order_id)
        REFERENCES market.orders (id) ON DELETE CASCADE,
    CONSTRAINT order_status_history_changed_by_fkey FOREIGN KEY (changed_by)
        REFERENCES market.users (id) ON DELETE SET NULL
);

CREATE INDEX idx_status_history_order_id ON market.order_status_history (order_id);
CREATE INDEX idx_status_history_created ON market.order_status_history (created_at DESC);
CREATE INDEX idx_status_history_changed_by ON market.order_status_history (changed_by)
    WHERE changed_by IS NOT NULL;

CREATE TRIGGER trg_order_status_history_append_only
    BEFORE UPDATE ON market.order_status_history
    FOR EACH ROW EXECUTE FUNCTION market.refuse_update('changed_by');

-- One history row for the order's first status and one per change, in the same transaction
-- as the INSERT/UPDATE of the order. Who and why come from two transaction-local settings the
-- caller may set beforehand:
--   SELECT set_config('market.actor_id', '42', true),
--          set_config('market.status_notes', 'packed', true);
-- For a cancellation without them, cancelled_by and cancellation_reason are used.
CREATE FUNCTION market.record_order_status() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_cancelled boolean := NEW.status = 'cancelled';
BEGIN
    INSERT INTO market.order_status_history (order_id, status, notes, changed_by)
    VALUES (
        NEW.id,
        NEW.status,
        coalesce(nullif(current_setting('market.status_notes', true), ''),
                 CASE WHEN v_cancelled THEN NEW.cancellation_reason END),
        coalesce(nullif(current_setting('market.actor_id', true), '')::bigint,
                 CASE WHEN v_cancelled THEN NEW.cancelled_by END)
    );
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_orders_status_history_insert
    AFTER INSERT ON market.orders
    FOR EACH ROW EXECUTE FUNCTION market.record_order_status();
CREATE TRIGGER trg_orders_status_history_update
    AFTER UPDATE OF status ON market.orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION market.record_order_status();

-- ---------------------------------------------------------------------------------------------
-- order_items
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.order_items (
    id               bigserial PRIMARY KEY,
    order_id         bigint NOT NULL,
    product_id       bigint NOT NULL,
    variant_id       bigint,
    product_name     varchar(255) NOT NULL,
    variant_name     varchar(255),
    sku              varchar(100),
    quantity         integer NOT NULL,
    unit_price       numeric(12, 2) NOT NULL,
    discount_amount  numeric(12, 2) NOT NULL DEFAULT 0,
    tax_amount       numeric(12, 2) NOT NULL DEFAULT 0,
    subtotal         numeric(12, 2) NOT NULL,
    attributes       jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT order_items_order_id_fkey FOREIGN KEY (order_id)
        REFERENCES market.orders (id) ON DELETE CASCADE,
    CONSTRAINT order_items_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES market.products (id),
    CONSTRAINT order_items_variant_id_fkey FOREIGN KEY (variant_id)
        REFERENCES market.product_variants (id),
    -- The variant is one of the product's variants.
    CONSTRAINT order_items_variant_of_product FOREIGN KEY (variant_id, product_id)
        REFERENCES market.product_variants (id, product_id),
    CONSTRAINT order_items_quantity_positive CHECK (quantity > 0),
    CONSTRAINT order_items_amounts_non_negative
        CHECK (unit_price >= 0 AND discount_amount >= 0 AND tax_amount >= 0 AND subtotal >= 0),
    CONSTRAINT order_items_attributes_object CHECK (jsonb_typeof(attributes) = 'object')
);

CREATE INDEX idx_order_items_order_id ON market.order_items (order_id);
CREATE INDEX idx_order_items_product_id ON market.order_items (product_id);
CREATE INDEX idx_order_items_variant_id ON market.order_items (variant_id)
    WHERE variant_id IS NOT NULL;

-- An order has one seller (orders.seller_id): each item is one of that seller's products.
CREATE FUNCTION market.check_order_item_seller() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM market.orders o JOIN market.products p ON p.id = NEW.product_id
                WHERE o.id = NEW.order_id AND p.seller_id <> o.seller_id) THEN
        RAISE EXCEPTION 'product % is not sold by the seller of order %',
            NEW.product_id, NEW.order_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'order_items_product_of_order_seller';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_order_items_product_of_order_seller
    BEFORE INSERT OR UPDATE OF order_id, product_id ON market.order_items
    FOR EACH ROW EXECUTE FUNCTION market.check_order_item_seller();

-- ---------------------------------------------------------------------------------------------
-- order_tracking: courier positions and tracking statuses
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.order_tracking (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL,
    courier_id  bigint NOT NULL,
    status      market.tracking_status_enum NOT NULL,
    latitude    numeric(10, 8),
    longitude   numeric(11, 8),
    notes       text,
    created_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT order_tracking_order_id_fkey FOREIGN KEY (order_id)
        REFERENCES market.orders (id) ON DELETE CASCADE,
    CONSTRAINT order_tracking_courier_id_fkey FOREIGN KEY (courier_id)
        REFERENCES market.users (id),
    CONSTRAINT order_tracking_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT order_tracking_longitude_range CHECK (longitude BETWEEN -180 AND 180),
    CONSTRAINT order_tracking_coordinates_paired CHECK ((latitude IS NULL) = (longitude IS NULL))
);

-- The FK index carries created_at: "latest position of this order" is one index probe.
CREATE INDEX idx_tracking_order_id ON market.order_tracking (order_id, created_at DESC);
CREATE INDEX idx_tracking_courier_id ON market.order_tracking (courier_id);
CREATE INDEX idx_tracking_created ON market.order_tracking (created_at DESC);

-- A tracking row is written by the courier assigned to the order at that moment.
CREATE FUNCTION market.check_tracking_courier() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM market.orders o
                WHERE o.id = NEW.order_id AND o.courier_id IS DISTINCT FROM NEW.courier_id) THEN
        RAISE EXCEPTION 'user % is not the courier assigned to order %',
            NEW.courier_id, NEW.order_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'order_tracking_courier_is_assigned';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_order_tracking_courier_is_assigned
    BEFORE INSERT OR UPDATE OF order_id, courier_id ON market.order_tracking
    FOR EACH ROW EXECUTE FUNCTION market.check_tracking_courier();

-- ---------------------------------------------------------------------------------------------
-- promo_code_usage (section 11)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.promo_code_usage (
    id               bigserial PRIMARY KEY,
    promo_code_id    bigint NOT NULL,
    user_id          bigint NOT NULL,
    order_id         bigint NOT NULL,
    discount_amount  numeric(12, 2) NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT promo_code_usage_promo_code_id_fkey FOREIGN KEY (promo_code_id)
        REFERENCES market.promo_codes (id),
    CONSTRAINT promo_code_usage_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id),
    CONSTRAINT promo_code_usage_order_id_fkey FOREIGN KEY (order_id)
        REFERENCES market.orders (id),
    -- The user is the order's buyer.
    CONSTRAINT promo_code_usage_user_is_order_buyer FOREIGN KEY (order_id, user_id)
        REFERENCES market.orders (id, buyer_id),
    CONSTRAINT promo_code_usage_promo_code_id_order_id_key UNIQUE (promo_code_id, order_id),
    CONSTRAINT promo_code_usage_discount_amount_non_negative CHECK (discount_amount >= 0)
);

-- idx_promo_usage_code_id carries user_id: the per-user limit counts with one index range.
CREATE INDEX idx_promo_usage_code_id ON market.promo_code_usage (promo_code_id, user_id);
CREATE INDEX idx_promo_usage_user_id ON market.promo_code_usage (user_id);
CREATE INDEX idx_promo_usage_order_id ON market.promo_code_usage (order_id);

CREATE TRIGGER trg_promo_code_usage_append_only
    BEFORE UPDATE ON market.promo_code_usage
    FOR EACH ROW EXECUTE FUNCTION market.refuse_update();

-- Using a code: the code row is locked first, so concurrent uses of one code are serialised
-- and every check below sees the uses committed before it. Refused (check_violation, named
-- constraint) when the code is inactive, outside starts_at..expires_at, already used
-- usage_limit_per_user times by this user, the order's subtotal is under min_order_amount,
-- the discount is over max_discount_amount, or the order names another code. usage_count is
-- then incremented; promo_codes_usage_within_limit refuses the use past usage_limit.
CREATE FUNCTION market.record_promo_code_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_code    market.promo_codes;
    v_order   market.orders;
    v_used    integer;
BEGIN
    SELECT * INTO v_code FROM market.promo_codes WHERE id = NEW.promo_code_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NEW;  -- promo_code_usage_promo_code_id_fkey reports it
    END IF;
    IF NOT v_code.is_active THEN
        RAISE EXCEPTION 'promo code % is not active', v_code.code
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_code_usage_code_active';
    END IF;
    IF now() < v_code.starts_at OR now() >= v_code.expires_at THEN
        RAISE EXCEPTION 'promo code % is valid from % until %, not at %',
            v_code.code, v_code.starts_at, v_code.expires_at, now()
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_code_usage_within_validity';
    END IF;
    SELECT count(*) INTO v_used FROM market.promo_code_usage
     WHERE promo_code_id = NEW.promo_code_id AND user_id = NEW.user_id;
    IF v_used >= v_code.usage_limit_per_user THEN
        RAISE EXCEPTION 'user % has used promo code % % time(s), the limit per user',
            NEW.user_id, v_code.code, v_used
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_code_usage_per_user_limit';
    END IF;
    SELECT * INTO v_order FROM market.orders WHERE id = NEW.order_id;
    IF FOUND AND v_order.subtotal < v_code.min_order_amount THEN
        RAISE EXCEPTION 'order subtotal % is under the minimum % of promo code %',
            v_order.subtotal, v_code.min_order_amount, v_code.code
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_code_usage_min_order_amount';
    END IF;
    IF FOUND AND v_order.promo_code_id IS DISTINCT FROM NEW.promo_code_id THEN
        RAISE EXCEPTION 'order % does not have promo code % applied', NEW.order_id, v_code.code
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_code_usage_matches_order';
    END IF;
    IF NEW.discount_amount > v_code.max_discount_amount THEN
        RAISE EXCEPTION 'discount % is over the cap % of promo code %',
            NEW.discount_amount, v_code.max_discount_amount, v_code.code
            USING ERRCODE = 'check_violation', CONSTRAINT = 'promo_code_usage_discount_within_cap';
    END IF;
    UPDATE market.promo_codes SET usage_count = usage_count + 1 WHERE id = NEW.promo_code_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_promo_code_usage_record
    BEFORE INSERT ON market.promo_code_usage
    FOR EACH ROW EXECUTE FUNCTION market.record_promo_code_usage();
