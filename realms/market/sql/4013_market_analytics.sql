-- Analytics, reports and system configuration (seed 004, sections 12-13):
-- market.analytics_events, seller_statistics, settings, audit_logs; the rollup
-- market.refresh_seller_statistics() and the materialized views the seed lists under
-- "Performance Considerations" (daily sales summary, product popularity, seller performance).

-- ---------------------------------------------------------------------------------------------
-- analytics_events
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.analytics_events (
    id            bigserial PRIMARY KEY,
    user_id       bigint,
    session_id    varchar(255),
    event_type    varchar(100) NOT NULL,
    event_name    varchar(200) NOT NULL,
    properties    jsonb,
    page_url      text,
    referrer_url  text,
    ip_address    inet,
    user_agent    text,
    created_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT analytics_events_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE SET NULL,
    CONSTRAINT analytics_events_properties_object CHECK (jsonb_typeof(properties) = 'object')
);

CREATE INDEX idx_analytics_user_id ON market.analytics_events (user_id);
CREATE INDEX idx_analytics_session_id ON market.analytics_events (session_id);
CREATE INDEX idx_analytics_event_type ON market.analytics_events (event_type);
CREATE INDEX idx_analytics_created ON market.analytics_events (created_at DESC);

-- ---------------------------------------------------------------------------------------------
-- seller_statistics: one rollup row per seller
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.seller_statistics (
    id                   bigserial PRIMARY KEY,
    seller_id            bigint NOT NULL,
    total_products       integer NOT NULL DEFAULT 0,
    active_products      integer NOT NULL DEFAULT 0,
    total_orders         integer NOT NULL DEFAULT 0,
    completed_orders     integer NOT NULL DEFAULT 0,
    cancelled_orders     integer NOT NULL DEFAULT 0,
    total_revenue        numeric(12, 2) NOT NULL DEFAULT 0,
    total_commission     numeric(12, 2) NOT NULL DEFAULT 0,
    average_rating       numeric(3, 2) NOT NULL DEFAULT 0,
    total_reviews        integer NOT NULL DEFAULT 0,
    response_rate        numeric(5, 2) NOT NULL DEFAULT 0,
    response_time_hours  numeric(8, 2) NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT seller_statistics_seller_id_fkey FOREIGN KEY (seller_id)
        REFERENCES market.users (id) ON DELETE CASCADE,
    CONSTRAINT seller_statistics_counts_non_negative
        CHECK (total_products >= 0 AND active_products >= 0 AND total_orders >= 0
               AND completed_orders >= 0 AND cancelled_orders >= 0 AND total_reviews >= 0),
    CONSTRAINT seller_statistics_amounts_non_negative
        CHECK (total_revenue >= 0 AND total_commission >= 0 AND response_time_hours >= 0),
    CONSTRAINT seller_statistics_average_rating_range CHECK (average_rating BETWEEN 0 AND 5),
    CONSTRAINT seller_statistics_response_rate_percentage CHECK (response_rate BETWEEN 0 AND 100)
);

CREATE UNIQUE INDEX idx_seller_stats_seller_id ON market.seller_statistics (seller_id);
CREATE INDEX idx_seller_stats_revenue ON market.seller_statistics (total_revenue DESC);
CREATE INDEX idx_seller_stats_rating ON market.seller_statistics (average_rating DESC);

CREATE TRIGGER trg_seller_statistics_updated_at
    BEFORE UPDATE ON market.seller_statistics
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
CREATE TRIGGER trg_seller_statistics_seller_role
    BEFORE INSERT OR UPDATE OF seller_id ON market.seller_statistics
    FOR EACH ROW EXECUTE FUNCTION market.require_user_role('seller_id', 'seller');

-- What seller_statistics and the seller_performance view hold, computed live, one row per
-- live seller (role 'seller', deleted_at IS NULL). Soft-deleted products and orders do not
-- count. completed = delivered; revenue = total_amount of delivered orders; commission =
-- commissions not cancelled; rating = round(avg, 2) over approved live reviews.
CREATE VIEW market.seller_metrics AS
SELECT u.id AS seller_id,
       coalesce(p.total_products, 0) AS total_products,
       coalesce(p.active_products, 0) AS active_products,
       coalesce(o.total_orders, 0) AS total_orders,
       coalesce(o.completed_orders, 0) AS completed_orders,
       coalesce(o.cancelled_orders, 0) AS cancelled_orders,
       coalesce(o.total_revenue, 0)::numeric(12, 2) AS total_revenue,
       coalesce(c.total_commission, 0)::numeric(12, 2) AS total_commission,
       coalesce(r.average_rating, 0)::numeric(3, 2) AS average_rating,
       coalesce(r.total_reviews, 0) AS total_reviews
  FROM market.users u
  LEFT JOIN LATERAL (
        SELECT count(*)::integer AS total_products,
               (count(*) FILTER (WHERE status = 'active'))::integer AS active_products
          FROM market.products WHERE seller_id = u.id AND deleted_at IS NULL) p ON true
  LEFT JOIN LATERAL (
        SELECT count(*)::integer AS total_orders,
               (count(*) FILTER (WHERE status = 'delivered'))::integer AS completed_orders,
               (count(*) FILTER (WHERE status = 'cancelled'))::integer AS cancelled_orders,
               sum(total_amount) FILTER (WHERE status = 'delivered') AS total_revenue
          FROM market.orders WHERE seller_id = u.id AND deleted_at IS NULL) o ON true
  LEFT JOIN LATERAL (
        SELECT sum(commission_amount) AS total_commission
          FROM market.commissions WHERE seller_id = u.id AND status <> 'cancelled') c ON true
  LEFT JOIN LATERAL (
        SELECT round(avg(rating), 2) AS average_rating, count(*)::integer AS total_reviews
          FROM market.reviews
         WHERE seller_id = u.id AND is_approved AND deleted_at IS NULL) r ON true
 WHERE u.role = 'seller' AND u.deleted_at IS NULL;

-- The seller_statistics rollup (a job runs it): upserts market.seller_metrics for one seller
-- (p_seller_id) or every live seller (NULL). response_rate and response_time_hours are not
-- derived here and keep their stored values. Returns the number of rows written.
CREATE FUNCTION market.refresh_seller_statistics(p_seller_id bigint DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_rows integer;
BEGIN
    INSERT INTO market.seller_statistics AS s
        (seller_id, total_products, active_products, total_orders, completed_orders,
         cancelled_orders, total_revenue, total_commission, average_rating, total_reviews)
    SELECT m.seller_id, m.total_products, m.active_products, m.total_orders,
           m.completed_orders, m.cancelled_orders, m.total_revenue, m.total_commission,
           m.average_rating, m.total_reviews
      FROM market.seller_metrics m
     WHERE p_seller_id IS NULL OR m.seller_id = p_seller_id
     ORDER BY m.seller_id
    ON CONFLICT (seller_id) DO UPDATE
       SET total_products = EXCLUDED.total_products,
           active_products = EXCLUDED.active_products,
           total_orders = EXCLUDED.total_orders,
           completed_orders = EXCLUDED.completed_orders,
           cancelled_orders = EXCLUDED.cancelled_orders,
           total_revenue = EXCLUDED.total_revenue,
           total_commission = EXCLUDED.total_commission,
           average_rating = EXCLUDED.average_rating,
           total_reviews = EXCLUDED.total_reviews;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Materialized views ("Materialized Views: For analytics"). Each has a unique index, so
-- market.refresh_analytics_views() can refresh them CONCURRENTLY (readers are not blocked).
-- ---------------------------------------------------------------------------------------------

-- Per UTC day and seller: orders placed (live), and of those not cancelled or refunded the
-- units, revenue (total_amount) and commission.
CREATE MATERIALIZED VIEW market.daily_sales_summary AS
SELECT (o.created_at AT TIME ZONE 'UTC')::date AS day,
       o.seller_id,
       count(*)::integer AS orders_count,
       coalesce(sum(i.units) FILTER (WHERE o.status NOT IN ('cancelled', 'refunded')), 0)::bigint
           AS units_sold,
       coalesce(sum(o.total_amount) FILTER (WHERE o.status NOT IN ('cancelled', 'refunded')),
                0)::numeric(14, 2) AS revenue,
       coalesce(sum(o.commission_amount)
                    FILTER (WHERE o.status NOT IN ('cancelled', 'refunded')), 0)::numeric(14, 2)
           AS commission
  FROM market.orders o
  LEFT JOIN LATERAL (SELECT sum(quantity) AS units FROM market.order_items
                      WHERE order_id = o.id) i ON true
 WHERE o.deleted_at IS NULL
 GROUP BY 1, 2
WITH NO DATA;
CREATE UNIQUE INDEX idx_daily_sales_summary_key ON market.daily_sales_summary (day, seller_id);

-- Per live product: views, units sold and orders (orders not cancelled or refunded), rating.
-- Rank with ORDER BY units_sold DESC, view_count DESC.
CREATE MATERIALIZED VIEW market.product_popularity AS
SELECT p.id AS product_id,
       p.seller_id,
       p.view_count,
       coalesce(s.units_sold, 0)::bigint AS units_sold,
       coalesce(s.orders_count, 0)::integer AS orders_count,
       p.rating_average,
       p.rating_count
  FROM market.products p
  LEFT JOIN LATERAL (
        SELECT sum(i.quantity) AS units_sold, count(DISTINCT i.order_id) AS orders_count
          FROM market.order_items i JOIN market.orders o ON o.id = i.order_id
         WHERE i.product_id = p.id AND o.deleted_at IS NULL
           AND o.status NOT IN ('cancelled', 'refunded')) s ON true
 WHERE p.deleted_at IS NULL
WITH NO DATA;
CREATE UNIQUE INDEX idx_product_popularity_key ON market.product_popularity (product_id);
CREATE INDEX idx_product_popularity_rank
    ON market.product_popularity (units_sold DESC, view_count DESC);

-- Seller performance: market.seller_metrics, materialized.
CREATE MATERIALIZED VIEW market.seller_performance AS
SELECT * FROM market.seller_metrics
WITH NO DATA;
CREATE UNIQUE INDEX idx_seller_performance_key ON market.seller_performance (seller_id);

-- Refreshes the three views; CONCURRENTLY once they hold data (the first refresh cannot be).
CREATE FUNCTION market.refresh_analytics_views() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_view text;
BEGIN
    FOREACH v_view IN ARRAY ARRAY['daily_sales_summary', 'product_popularity',
                                  'seller_performance'] LOOP
        IF (SELECT ispopulated FROM pg_matviews
             WHERE schemaname = 'market' AND matviewname = v_view) THEN
            EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY market.%I', v_view);
        ELSE
            EXECUTE format('REFRESH MATERIALIZED VIEW market.%I', v_view);
        END IF;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- settings: system-wide settings
-- ---------------------------------------------------------------------------------------------

-- Does the text value parse as its declared type? number: a decimal (optional sign,
-- fraction, exponent); boolean: 'true' or 'false'; json: any JSON document; string: anything.
CREATE FUNCTION market.setting_value_valid(p_type market.setting_type_enum, p_value text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    CASE p_type
        WHEN 'number' THEN
            RETURN p_value ~ '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$';
        WHEN 'boolean' THEN
            RETURN p_value IN ('true', 'false');
        WHEN 'json' THEN
            PERFORM p_value::jsonb;
            RETURN true;
        ELSE
            RETURN true;
    END CASE;
EXCEPTION
    WHEN invalid_text_representation THEN
        RETURN false;
END;
$$;

CREATE TABLE market.settings (
    id           bigserial PRIMARY KEY,
    key          varchar(100) NOT NULL,
    value        text NOT NULL,
    type         market.setting_type_enum NOT NULL,
    description  text,
    is_public    boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),

    -- Lower-case dotted names, e.g. commission.default_rate.
    CONSTRAINT settings_key_format CHECK (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$'),
    CONSTRAINT settings_value_matches_type CHECK (market.setting_value_valid(type, value))
);

CREATE UNIQUE INDEX idx_settings_key ON market.settings (key);

CREATE TRIGGER trg_settings_updated_at
    BEFORE UPDATE ON market.settings
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- audit_logs: append-only audit trail
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.audit_logs (
    id           bigserial PRIMARY KEY,
    user_id      bigint,
    action       varchar(100) NOT NULL,
    entity_type  varchar(100) NOT NULL,
    entity_id    bigint,
    old_values   jsonb,
    new_values   jsonb,
    ip_address   inet,
    user_agent   text,
    created_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT audit_logs_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE SET NULL
);

CREATE INDEX idx_audit_logs_user_id ON market.audit_logs (user_id);
CREATE INDEX idx_audit_logs_entity ON market.audit_logs (entity_type, entity_id);
CREATE INDEX idx_audit_logs_action ON market.audit_logs (action);
CREATE INDEX idx_audit_logs_created ON market.audit_logs (created_at DESC);

CREATE TRIGGER trg_audit_logs_append_only
    BEFORE UPDATE ON market.audit_logs
    FOR EACH ROW EXECUTE FUNCTION market.refuse_update('user_id');
