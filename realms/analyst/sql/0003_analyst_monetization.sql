-- Monetization (seed 000, tables 4, 5, 11, 12, 13; step 3 of its migration order):
-- analyst.subscription_tiers, analyst.discount_codes, analyst.invite_links,
-- analyst.subscriptions, analyst.payment_transactions, their indexes and updated_at triggers,
-- and the functions
--   update_analyst_subscriber_counts()   subscriptions -> analyst_profiles.total_subscribers,
--                                        analyst_profiles.active_subscribers (deltas)
--   increment_discount_code_usage()      subscriptions -> discount_codes.usage_count
--   expire_old_subscriptions()           cron: active subscriptions past expires_at -> expired
--   cleanup_expired_otps()               cron: deletes OTPs expired more than 24 hours ago
--   calculate_analyst_monthly_revenue()  monthly-equivalent revenue of an analyst (paise)
-- Relies on 0001 and 0002. Readings of the seed's vague points: docs/schema-notes.md.
-- Amounts are integers in paise.

-- 4. subscription_tiers ----------------------------------------------------------------------
CREATE TABLE analyst.subscription_tiers (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    analyst_id        uuid NOT NULL REFERENCES analyst.users (id),
    tier_name         varchar(100) NOT NULL,
    tier_description  text,
    tier_order        integer     NOT NULL DEFAULT 0,
    price_monthly     integer     NOT NULL,
    price_yearly      integer,
    currency          varchar(3)  NOT NULL DEFAULT 'INR',
    features          jsonb,
    posts_per_day     integer,                       -- NULL = unlimited
    chat_access       boolean     NOT NULL DEFAULT false,
    priority_support  boolean     NOT NULL DEFAULT false,
    is_active         boolean     NOT NULL DEFAULT true,
    is_free_tier      boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz,
    -- Lets subscriptions check that their denormalized analyst_id is the tier's analyst.
    CONSTRAINT subscription_tiers_id_analyst_id_key UNIQUE (id, analyst_id),
    CONSTRAINT subscription_tiers_price_monthly_non_negative CHECK (price_monthly >= 0),
    CONSTRAINT subscription_tiers_price_yearly_non_negative CHECK (price_yearly >= 0),
    -- A free plan (0 a month) may say 0 a year; every other yearly price is a real discount.
    CONSTRAINT subscription_tiers_yearly_below_twelve_months CHECK (
        price_yearly < price_monthly::bigint * 12 OR (price_monthly = 0 AND price_yearly = 0)
    ),
    CONSTRAINT subscription_tiers_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT subscription_tiers_features_array CHECK (jsonb_typeof(features) = 'array'),
    CONSTRAINT subscription_tiers_posts_per_day_non_negative CHECK (posts_per_day >= 0)
);

CREATE INDEX idx_subscription_tiers_analyst_id
    ON analyst.subscription_tiers (analyst_id, tier_order);
CREATE UNIQUE INDEX subscription_tiers_one_free_tier_per_analyst
    ON analyst.subscription_tiers (analyst_id) WHERE is_free_tier AND deleted_at IS NULL;
CREATE UNIQUE INDEX subscription_tiers_unique_name_per_analyst
    ON analyst.subscription_tiers (analyst_id, lower(tier_name)) WHERE deleted_at IS NULL;

CREATE TRIGGER trg_subscription_tiers_updated_at
    BEFORE UPDATE ON analyst.subscription_tiers
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- 13. discount_codes -------------------------------------------------------------------------
CREATE TABLE analyst.discount_codes (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    analyst_id                 uuid REFERENCES analyst.users (id),
    code                       varchar(50)  NOT NULL,
    code_name                  varchar(255),
    code_description           text,
    discount_type              varchar(20)  NOT NULL,
    discount_value             integer      NOT NULL,
    max_discount_amount        integer,
    applicable_tiers           uuid[],                 -- NULL = every tier of the analyst
    billing_cycle_restriction  varchar(20)  NOT NULL DEFAULT 'both',
    first_time_only            boolean      NOT NULL DEFAULT false,
    is_active                  boolean      NOT NULL DEFAULT true,
    usage_limit                integer,                -- NULL = unlimited
    usage_count                integer      NOT NULL DEFAULT 0,
    per_user_limit             integer               DEFAULT 1,  -- NULL = unlimited
    valid_from                 timestamptz,
    valid_until                timestamptz,
    created_at                 timestamptz  NOT NULL DEFAULT now(),
    updated_at                 timestamptz  NOT NULL DEFAULT now(),
    deleted_at                 timestamptz,
    CONSTRAINT discount_codes_code_key UNIQUE (code),
    CONSTRAINT discount_codes_discount_type_valid
        CHECK (discount_type IN ('percentage', 'fixed_amount')),
    CONSTRAINT discount_codes_discount_value_valid CHECK (
        (discount_type = 'percentage' AND discount_value BETWEEN 1 AND 100)
        OR (discount_type = 'fixed_amount' AND discount_value > 0)
    ),
    CONSTRAINT discount_codes_max_discount_amount_non_negative CHECK (max_discount_amount >= 0),
    CONSTRAINT discount_codes_billing_cycle_restriction_valid
        CHECK (billing_cycle_restriction IN ('monthly', 'yearly', 'both')),
    CONSTRAINT discount_codes_usage_limit_non_negative CHECK (usage_limit >= 0),
    CONSTRAINT discount_codes_usage_count_non_negative CHECK (usage_count >= 0),
    CONSTRAINT discount_codes_usage_within_limit
        CHECK (usage_limit IS NULL OR usage_count <= usage_limit),
    CONSTRAINT discount_codes_per_user_limit_positive CHECK (per_user_limit >= 1),
    CONSTRAINT discount_codes_valid_until_after_valid_from CHECK (valid_until > valid_from)
);

CREATE INDEX idx_discount_codes_analyst_id ON analyst.discount_codes (analyst_id)
    WHERE analyst_id IS NOT NULL;

CREATE TRIGGER trg_discount_codes_updated_at
    BEFORE UPDATE ON analyst.discount_codes
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- 12. invite_links ---------------------------------------------------------------------------
CREATE TABLE analyst.invite_links (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    analyst_id               uuid NOT NULL REFERENCES analyst.users (id),
    invite_code              varchar(50) NOT NULL,
    link_name                varchar(255),
    link_description         text,
    is_active                boolean     NOT NULL DEFAULT true,
    expires_at               timestamptz,
    max_uses                 integer,                  -- NULL = unlimited
    discount_code_id         uuid REFERENCES analyst.discount_codes (id) ON DELETE SET NULL,
    total_clicks             integer     NOT NULL DEFAULT 0,
    unique_visitors          integer     NOT NULL DEFAULT 0,
    signups_count            integer     NOT NULL DEFAULT 0,
    conversions_count        integer     NOT NULL DEFAULT 0,  -- paid subscriptions
    total_revenue_generated  integer     NOT NULL DEFAULT 0,
    -- Capped at 999.99 (the type's maximum): conversions recorded without a click must not
    -- make the write that records them fail.
    conversion_rate          numeric(5, 2) GENERATED ALWAYS AS (
        CASE WHEN total_clicks > 0
             THEN least(round(conversions_count::numeric / total_clicks * 100, 2), 999.99)
             ELSE 0
        END
    ) STORED,
    utm_source               varchar(100),
    utm_medium               varchar(100),
    utm_campaign             varchar(100),
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    last_used_at             timestamptz,
    deleted_at               timestamptz,
    CONSTRAINT invite_links_invite_code_key UNIQUE (invite_code),
    CONSTRAINT invite_links_max_uses_positive CHECK (max_uses >= 1),
    CONSTRAINT invite_links_counters_non_negative CHECK (
        total_clicks >= 0 AND unique_visitors >= 0 AND signups_count >= 0
        AND conversions_count >= 0 AND total_revenue_generated >= 0
    )
);

CREATE INDEX idx_invite_links_analyst_id ON analyst.invite_links (analyst_id);
CREATE INDEX idx_invite_links_discount_code_id ON analyst.invite_links (discount_code_id)
    WHERE discount_code_id IS NOT NULL;

CREATE TRIGGER trg_invite_links_updated_at
    BEFORE UPDATE ON analyst.invite_links
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- 5. subscriptions ---------------------------------------------------------------------------
CREATE TABLE analyst.subscriptions (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                   uuid NOT NULL REFERENCES analyst.users (id),
    analyst_id                uuid NOT NULL REFERENCES analyst.users (id),  -- denormalized
    tier_id                   uuid NOT NULL REFERENCES analyst.subscription_tiers (id),
    status                    varchar(20) NOT NULL,
    billing_cycle             varchar(20) NOT NULL,
    price_paid                integer,                 -- tier price at purchase (snapshot)
    currency                  varchar(3)  NOT NULL DEFAULT 'INR',
    discount_applied          integer,
    final_price               integer,                 -- amount actually charged
    start_date                timestamptz,
    expires_at                timestamptz,
    cancelled_at              timestamptz,
    suspended_at              timestamptz,
    razorpay_subscription_id  varchar(255),
    razorpay_customer_id      varchar(255),
    razorpay_plan_id          varchar(255),
    auto_renewal              boolean     NOT NULL DEFAULT true,
    next_billing_date         timestamptz,
    payment_retry_count       integer     NOT NULL DEFAULT 0,
    last_payment_attempt      timestamptz,
    grace_period_ends_at      timestamptz,
    referred_by_invite_link   uuid REFERENCES analyst.invite_links (id) ON DELETE SET NULL,
    discount_code_used        uuid REFERENCES analyst.discount_codes (id) ON DELETE SET NULL,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    deleted_at                timestamptz,
    CONSTRAINT subscriptions_razorpay_subscription_id_key UNIQUE (razorpay_subscription_id),
    CONSTRAINT subscriptions_tier_matches_analyst FOREIGN KEY (tier_id, analyst_id)
        REFERENCES analyst.subscription_tiers (id, analyst_id),
    CONSTRAINT subscriptions_status_valid CHECK (
        status IN ('active', 'cancelled', 'expired', 'suspended', 'pending_payment')
    ),
    CONSTRAINT subscriptions_billing_cycle_valid CHECK (billing_cycle IN ('monthly', 'yearly')),
    CONSTRAINT subscriptions_no_self_subscription CHECK (user_id <> analyst_id),
    CONSTRAINT subscriptions_payment_retry_count_range CHECK (payment_retry_count BETWEEN 0 AND 3),
    CONSTRAINT subscriptions_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT subscriptions_amounts_non_negative CHECK (
        price_paid >= 0 AND discount_applied >= 0 AND final_price >= 0
    )
);

-- One active subscription per user-analyst pair; also the user's feed lookup
-- ("analysts this user is actively subscribed to").
CREATE UNIQUE INDEX subscriptions_one_active_per_user_analyst
    ON analyst.subscriptions (user_id, analyst_id) WHERE status = 'active' AND deleted_at IS NULL;
-- Foreign keys (full indexes, so ON DELETE checks on users/tiers can use them).
CREATE INDEX idx_subscriptions_user_id ON analyst.subscriptions (user_id);
CREATE INDEX idx_subscriptions_analyst_id ON analyst.subscriptions (analyst_id);
CREATE INDEX idx_subscriptions_tier_id ON analyst.subscriptions (tier_id);
CREATE INDEX idx_subscriptions_referred_by_invite_link
    ON analyst.subscriptions (referred_by_invite_link) WHERE referred_by_invite_link IS NOT NULL;
CREATE INDEX idx_subscriptions_discount_code_used
    ON analyst.subscriptions (discount_code_used, user_id) WHERE discount_code_used IS NOT NULL;
-- Query patterns: a user's subscriptions, an analyst's subscribers by status (revenue, lists).
CREATE INDEX idx_subscriptions_user_status ON analyst.subscriptions (user_id, status, expires_at)
    WHERE deleted_at IS NULL;
CREATE INDEX idx_subscriptions_analyst_status ON analyst.subscriptions (analyst_id, status)
    WHERE deleted_at IS NULL;
-- expire_old_subscriptions(): status = 'active' AND expires_at < now().
CREATE INDEX idx_subscriptions_status_expires_at ON analyst.subscriptions (status, expires_at);
-- Renewal job: active, auto-renewing subscriptions by next billing date.
CREATE INDEX idx_subscriptions_next_billing_date ON analyst.subscriptions (next_billing_date)
    WHERE status = 'active' AND auto_renewal AND deleted_at IS NULL;

CREATE TRIGGER trg_subscriptions_updated_at
    BEFORE UPDATE ON analyst.subscriptions
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- 11. payment_transactions -------------------------------------------------------------------
CREATE TABLE analyst.payment_transactions (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid REFERENCES analyst.users (id),
    analyst_id           uuid REFERENCES analyst.users (id),
    subscription_id      uuid REFERENCES analyst.subscriptions (id),
    razorpay_payment_id  varchar(255),
    razorpay_order_id    varchar(255),
    razorpay_signature   varchar(500),
    transaction_type     varchar(50) NOT NULL,
    amount               integer     NOT NULL,
    currency             varchar(3)  NOT NULL DEFAULT 'INR',
    status               varchar(50) NOT NULL,
    payment_method       varchar(50),                 -- UPI, card, netbanking
    failure_reason       text,
    failure_code         varchar(100),
    retry_count          integer     NOT NULL DEFAULT 0,
    refund_amount        integer,
    refund_reason        text,
    refunded_at          timestamptz,
    razorpay_refund_id   varchar(255),
    payout_amount        integer,                     -- analyst's share
    platform_commission  integer,                     -- platform's share
    payout_status        varchar(50),
    razorpay_payout_id   varchar(255),
    paid_out_at          timestamptz,
    metadata             jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT payment_transactions_razorpay_payment_id_key UNIQUE (razorpay_payment_id),
    CONSTRAINT payment_transactions_transaction_type_valid CHECK (
        transaction_type IN ('subscription_payment', 'renewal', 'refund', 'payout')
    ),
    CONSTRAINT payment_transactions_status_valid CHECK (
        status IN ('pending', 'authorized', 'captured', 'failed', 'refunded', 'cancelled')
    ),
    CONSTRAINT payment_transactions_amount_non_negative CHECK (amount >= 0),
    CONSTRAINT payment_transactions_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT payment_transactions_retry_count_non_negative CHECK (retry_count >= 0),
    CONSTRAINT payment_transactions_refund_within_amount
        CHECK (refund_amount BETWEEN 0 AND amount),
    CONSTRAINT payment_transactions_split_non_negative
        CHECK (payout_amount >= 0 AND platform_commission >= 0),
    CONSTRAINT payment_transactions_split_sums_to_amount CHECK (
        payout_amount IS NULL OR platform_commission IS NULL
        OR payout_amount::bigint + platform_commission = amount
    )
);

-- Foreign keys; user_id and analyst_id double as payment history (newest first).
CREATE INDEX idx_payment_transactions_user_id
    ON analyst.payment_transactions (user_id, created_at DESC);
CREATE INDEX idx_payment_transactions_analyst_id
    ON analyst.payment_transactions (analyst_id, created_at DESC);
CREATE INDEX idx_payment_transactions_subscription_id
    ON analyst.payment_transactions (subscription_id) WHERE subscription_id IS NOT NULL;
-- Razorpay webhooks name the order.
CREATE INDEX idx_payment_transactions_razorpay_order_id
    ON analyst.payment_transactions (razorpay_order_id) WHERE razorpay_order_id IS NOT NULL;

CREATE TRIGGER trg_payment_transactions_updated_at
    BEFORE UPDATE ON analyst.payment_transactions
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- Subscriber counts ---------------------------------------------------------------------------
-- total_subscribers  = subscriptions of the analyst with deleted_at IS NULL (any status)
-- active_subscribers = those of them with status = 'active'
-- Kept by deltas, never by recounting: a statement-level trigger per event sums, per analyst,
-- +1 for every new row that counts and -1 for every old row that counted (so an UPDATE that
-- moves a row to another analyst moves the counts too), then applies one UPDATE per analyst.
-- Bulk inserts therefore cost one profile update per analyst, not per row. Counters never go
-- below 0. Profiles are locked in user_id order so concurrent bulk statements cannot deadlock.
CREATE OR REPLACE FUNCTION analyst.update_analyst_subscriber_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids    uuid[];
    v_active bigint[];
    v_total  bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(analyst_id ORDER BY analyst_id),
               array_agg(d_active ORDER BY analyst_id),
               array_agg(d_total ORDER BY analyst_id)
          INTO v_ids, v_active, v_total
          FROM (SELECT analyst_id,
                       count(*) FILTER (WHERE status = 'active' AND deleted_at IS NULL) AS d_active,
                       count(*) FILTER (WHERE deleted_at IS NULL) AS d_total
                  FROM new_rows GROUP BY analyst_id) d
         WHERE d_active <> 0 OR d_total <> 0;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(analyst_id ORDER BY analyst_id),
               array_agg(d_active ORDER BY analyst_id),
               array_agg(d_total ORDER BY analyst_id)
          INTO v_ids, v_active, v_total
          FROM (SELECT analyst_id,
                       -count(*) FILTER (WHERE status = 'active' AND deleted_at IS NULL) AS d_active,
                       -count(*) FILTER (WHERE deleted_at IS NULL) AS d_total
                  FROM old_rows GROUP BY analyst_id) d
         WHERE d_active <> 0 OR d_total <> 0;
    ELSE  -- UPDATE
        SELECT array_agg(analyst_id ORDER BY analyst_id),
               array_agg(d_active ORDER BY analyst_id),
               array_agg(d_total ORDER BY analyst_id)
          INTO v_ids, v_active, v_total
          FROM (SELECT analyst_id, sum(a) AS d_active, sum(t) AS d_total
                  FROM (SELECT analyst_id,
                               (status = 'active' AND deleted_at IS NULL)::int AS a,
                               (deleted_at IS NULL)::int AS t
                          FROM new_rows
                        UNION ALL
                        SELECT analyst_id,
                               -(status = 'active' AND deleted_at IS NULL)::int,
                               -(deleted_at IS NULL)::int
                          FROM old_rows) AS changes
                 GROUP BY analyst_id) d
         WHERE d_active <> 0 OR d_total <> 0;
    END IF;

    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM analyst.analyst_profiles
     WHERE user_id = ANY (v_ids) ORDER BY user_id FOR UPDATE;
    UPDATE analyst.analyst_profiles p
       SET active_subscribers = GREATEST(p.active_subscribers + d.d_active, 0),
           total_subscribers  = GREATEST(p.total_subscribers + d.d_total, 0)
      FROM unnest(v_ids, v_active, v_total) AS d(analyst_id, d_active, d_total)
     WHERE p.user_id = d.analyst_id;
    RETURN NULL;
END;
$$;

-- Transition tables allow one event per trigger, hence three triggers on one function.
CREATE TRIGGER trg_subscriptions_subscriber_counts_insert
    AFTER INSERT ON analyst.subscriptions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_subscriber_counts();
CREATE TRIGGER trg_subscriptions_subscriber_counts_update
    AFTER UPDATE ON analyst.subscriptions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_subscriber_counts();
CREATE TRIGGER trg_subscriptions_subscriber_counts_delete
    AFTER DELETE ON analyst.subscriptions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_subscriber_counts();

-- Discount code usage -------------------------------------------------------------------------
-- +1 on the code when a subscription is inserted with it, or updated to carry it (from NULL or
-- from another code). Nothing is given back on cancellation, deletion or removal of the code:
-- usage is usage. Over-use fails discount_codes_usage_within_limit, which aborts the statement
-- that wrote the subscription.
CREATE OR REPLACE FUNCTION analyst.increment_discount_code_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE analyst.discount_codes
       SET usage_count = usage_count + 1
     WHERE id = NEW.discount_code_used;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_subscriptions_discount_usage_insert
    AFTER INSERT ON analyst.subscriptions
    FOR EACH ROW WHEN (NEW.discount_code_used IS NOT NULL)
    EXECUTE FUNCTION analyst.increment_discount_code_usage();
CREATE TRIGGER trg_subscriptions_discount_usage_update
    AFTER UPDATE OF discount_code_used ON analyst.subscriptions
    FOR EACH ROW WHEN (NEW.discount_code_used IS NOT NULL
                       AND NEW.discount_code_used IS DISTINCT FROM OLD.discount_code_used)
    EXECUTE FUNCTION analyst.increment_discount_code_usage();

-- Cron jobs -----------------------------------------------------------------------------------
-- Marks active subscriptions whose expires_at has passed as expired; returns how many.
CREATE OR REPLACE FUNCTION analyst.expire_old_subscriptions() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    UPDATE analyst.subscriptions
       SET status = 'expired', updated_at = now()
     WHERE status = 'active' AND expires_at < now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- Deletes OTPs that expired more than 24 hours ago; returns how many.
CREATE OR REPLACE FUNCTION analyst.cleanup_expired_otps() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM analyst.otp_verifications WHERE expires_at < now() - interval '24 hours';
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- Monthly-equivalent revenue (paise) of an analyst: over the analyst's subscriptions with
-- status 'active' and deleted_at IS NULL, the charged price (final_price, else price_paid)
-- for monthly ones and that price / 12, rounded per subscription, for yearly ones.
CREATE OR REPLACE FUNCTION analyst.calculate_analyst_monthly_revenue(p_analyst_id uuid)
RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(sum(
               CASE billing_cycle
                   WHEN 'yearly' THEN round(COALESCE(final_price, price_paid, 0)::numeric / 12)
                   ELSE COALESCE(final_price, price_paid, 0)
               END), 0)::integer
      FROM analyst.subscriptions
     WHERE analyst_id = p_analyst_id
       AND status = 'active'
       AND deleted_at IS NULL;
$$;
