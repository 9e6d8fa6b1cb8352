-- Creator realm, part 6 of 10: the analytics system. Owns creator.content_analytics and
-- creator.user_analytics (append-only events with geography and device data),
-- creator.revenue_analytics (hourly and daily revenue per creator and platform-wide) and
-- refresh_revenue_analytics(), which rebuilds it from completed transactions.
-- Relies on 3001 (users), 3002 (content), 3005 (transactions).
-- Events are archived after 2 years by archive_analytics_events() (3009).

-- ---------------------------------------------------------------------------------------------
-- content_analytics: one row per event on a piece of content
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.content_analytics (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    content_id             uuid NOT NULL,
    user_id                uuid,
    event_type             varchar(20) NOT NULL,
    view_duration_seconds  integer,
    session_id             varchar(100),
    ip_address             inet,
    country                char(2),
    region                 varchar(100),
    city                   varchar(100),
    device_type            varchar(20),
    browser                varchar(100),
    operating_system       varchar(100),
    user_agent             text,
    referrer               varchar(1000),
    metadata               jsonb NOT NULL DEFAULT '{}',
    created_at             timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT content_analytics_content_id_fkey FOREIGN KEY (content_id)
        REFERENCES creator.content (id) ON DELETE CASCADE,
    -- Anonymous (logged-out) events have no user; an erased user's events become anonymous.
    CONSTRAINT content_analytics_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT content_analytics_event_type_valid
        CHECK (event_type IN ('view', 'like', 'unlike', 'share', 'comment', 'download',
                              'purchase')),
    -- "view: Content views with duration": only a view has a duration.
    CONSTRAINT content_analytics_view_duration_only_for_views
        CHECK (view_duration_seconds IS NULL OR event_type = 'view'),
    CONSTRAINT content_analytics_view_duration_non_negative CHECK (view_duration_seconds >= 0),
    CONSTRAINT content_analytics_country_format CHECK (country ~ '^[A-Z]{2}$'),
    CONSTRAINT content_analytics_device_type_valid
        CHECK (device_type IN ('desktop', 'mobile', 'tablet', 'tv', 'other')),
    CONSTRAINT content_analytics_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

-- The seed's indexes, exactly as listed ("Analytics performance").
CREATE INDEX idx_content_analytics_content ON creator.content_analytics (content_id);
CREATE INDEX idx_content_analytics_created_at ON creator.content_analytics (created_at DESC);
CREATE INDEX idx_content_analytics_user_id ON creator.content_analytics (user_id)
    WHERE user_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- user_analytics: one row per platform-usage event of a user
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.user_analytics (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL,
    event_type        varchar(30) NOT NULL,
    target_user_id    uuid,
    session_id        varchar(100),
    ip_address        inet,
    country           char(2),
    region            varchar(100),
    city              varchar(100),
    device_type       varchar(20),
    browser           varchar(100),
    operating_system  varchar(100),
    user_agent        text,
    metadata          jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT user_analytics_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    -- The other user of the event: the profile viewed, the creator subscribed to, the tip's
    -- other side.
    CONSTRAINT user_analytics_target_user_id_fkey FOREIGN KEY (target_user_id)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT user_analytics_event_type_valid
        CHECK (event_type IN ('login', 'logout', 'profile_view', 'subscription', 'unsubscription',
                              'tip_sent', 'tip_received', 'content_upload', 'message_sent')),
    CONSTRAINT user_analytics_country_format CHECK (country ~ '^[A-Z]{2}$'),
    CONSTRAINT user_analytics_device_type_valid
        CHECK (device_type IN ('desktop', 'mobile', 'tablet', 'tv', 'other')),
    CONSTRAINT user_analytics_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE INDEX idx_user_analytics_user_id ON creator.user_analytics (user_id, created_at DESC);
CREATE INDEX idx_user_analytics_created_at ON creator.user_analytics (created_at DESC);
CREATE INDEX idx_user_analytics_target_user_id ON creator.user_analytics (target_user_id)
    WHERE target_user_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- revenue_analytics: pre-aggregated revenue per hour or day (UTC), revenue type and currency,
-- for one creator (creator_id) or the whole platform (creator_id NULL)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.revenue_analytics (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id         uuid,
    period_type        varchar(10) NOT NULL,
    period_start       timestamptz NOT NULL,
    revenue_type       varchar(20) NOT NULL,
    currency           char(3) NOT NULL,
    gross_amount       bigint NOT NULL DEFAULT 0,
    platform_fee       bigint NOT NULL DEFAULT 0,
    net_amount         bigint NOT NULL DEFAULT 0,
    transaction_count  integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT revenue_analytics_creator_id_fkey FOREIGN KEY (creator_id)
        REFERENCES creator.users (id),
    CONSTRAINT revenue_analytics_period_key UNIQUE NULLS NOT DISTINCT
        (creator_id, period_type, period_start, revenue_type, currency),
    CONSTRAINT revenue_analytics_period_type_valid CHECK (period_type IN ('hour', 'day')),
    -- A period starts on its hour or day boundary in UTC.
    CONSTRAINT revenue_analytics_period_start_aligned
        CHECK (period_type NOT IN ('hour', 'day')
               OR date_trunc(period_type, period_start AT TIME ZONE 'UTC')
                  = period_start AT TIME ZONE 'UTC'),
    CONSTRAINT revenue_analytics_revenue_type_valid
        CHECK (revenue_type IN ('subscription', 'tip', 'content_sale', 'message_sale',
                                'stream_access')),
    CONSTRAINT revenue_analytics_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT revenue_analytics_amounts_non_negative
        CHECK (gross_amount >= 0 AND platform_fee >= 0 AND transaction_count >= 0),
    CONSTRAINT revenue_analytics_platform_fee_within_gross CHECK (platform_fee <= gross_amount),
    CONSTRAINT revenue_analytics_net_amount_is_gross_minus_fee
        CHECK (net_amount = gross_amount - platform_fee)
);

COMMENT ON COLUMN creator.revenue_analytics.gross_amount IS 'Minor units (cents)';
COMMENT ON COLUMN creator.revenue_analytics.platform_fee IS 'Minor units (cents)';
COMMENT ON COLUMN creator.revenue_analytics.net_amount IS 'Creator earnings, minor units (cents)';

-- The platform-wide rows by period (a creator's rows are served by revenue_analytics_period_key).
CREATE INDEX idx_revenue_analytics_period ON creator.revenue_analytics (period_type, period_start DESC);

CREATE TRIGGER trg_revenue_analytics_updated_at
    BEFORE UPDATE ON creator.revenue_analytics
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- refresh_revenue_analytics(period_type, from, to): rebuilds the <period_type> rows of every
-- period from the one containing `from` to the one containing `to` (UTC), from the
-- transactions with status 'completed' whose completed_at falls in those periods: one row per
-- creator, and one platform-wide row (creator_id NULL), per period, revenue type and currency.
-- A period without revenue has no row. Idempotent: run it again (e.g. on the current hour)
-- and it replaces what it wrote. Refunded payments (status 'refunded') no longer count.
-- Returns the number of rows written.
CREATE FUNCTION creator.refresh_revenue_analytics(
    p_period_type text, p_from timestamptz, p_to timestamptz
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_unit interval;
    v_from timestamptz;
    v_to   timestamptz;
    v_rows integer;
BEGIN
    IF p_period_type IS NULL OR p_period_type NOT IN ('hour', 'day') THEN
        RAISE EXCEPTION 'period_type must be hour or day, not %', p_period_type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_unit := ('1 ' || p_period_type)::interval;
    v_from := date_trunc(p_period_type, p_from, 'UTC');
    v_to := date_trunc(p_period_type, p_to, 'UTC') + v_unit;

    -- One refresh at a time, so two runs cannot interleave their deletes and inserts.
    PERFORM pg_advisory_xact_lock(hashtext('creator.refresh_revenue_analytics'));
    DELETE FROM creator.revenue_analytics
     WHERE period_type = p_period_type AND period_start >= v_from AND period_start < v_to;

    INSERT INTO creator.revenue_analytics
           (creator_id, period_type, period_start, revenue_type, currency,
            gross_amount, platform_fee, net_amount, transaction_count)
    SELECT x.creator_id, p_period_type, x.period_start, x.revenue_type, x.currency,
           sum(x.gross_amount), sum(x.platform_fee), sum(x.net_amount), count(*)
      FROM (SELECT t.creator_id,
                   date_trunc(p_period_type, t.completed_at, 'UTC') AS period_start,
                   CASE t.transaction_type
                       WHEN 'subscription' THEN 'subscription'
                       WHEN 'tip' THEN 'tip'
                       WHEN 'content_purchase' THEN 'content_sale'
                       WHEN 'message_purchase' THEN 'message_sale'
                       WHEN 'stream_access' THEN 'stream_access'
                   END AS revenue_type,
                   t.currency, t.gross_amount, t.platform_fee, t.net_amount
              FROM creator.transactions t
             WHERE t.status = 'completed'
               AND t.transaction_type IN ('subscription', 'tip', 'content_purchase',
                                          'message_purchase', 'stream_access')
               AND t.completed_at >= v_from AND t.completed_at < v_to) x
     GROUP BY GROUPING SETS ((x.creator_id, x.period_start, x.revenue_type, x.currency),
                             (x.period_start, x.revenue_type, x.currency));
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;
