-- Realm aichat (seed 002, "AI SaaS Chat Platform", Neon): schema aichat with the seed's 13 core
-- tables, every documented column, default, UNIQUE, foreign key, CHECK and index, and the
-- trigger function update_updated_at_column() on every table that has updated_at.
-- Names are the seed's camelCase in snake_case (planTier -> plan_tier, tokenUsage ->
-- token_usage, idx_users_planTier -> idx_users_plan_tier); types, lengths and defaults are the
-- seed's, including `timestamp` (without time zone). The readings of the seed's vague points,
-- and every rule added beyond its text, are in realms/aichat/SCHEMA_NOTES.md.
-- gen_random_uuid() is built into Postgres 13+, so no extension is needed.

CREATE SCHEMA IF NOT EXISTS aichat;

-- update_updated_at_column(): sets updated_at on every UPDATE ("Audit Trail: Created/updated
-- timestamps on all tables"). CURRENT_TIMESTAMP, like the columns' default: the same clock.
CREATE OR REPLACE FUNCTION aichat.update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    NEW.updated_at := CURRENT_TIMESTAMP;
    RETURN NEW;
END;
$$;

-- =============================================================================================
-- User management
-- =============================================================================================

-- 1. users: user account information ---------------------------------------------------------
CREATE TABLE aichat.users (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email              varchar(255) NOT NULL,
    password           varchar(255) NOT NULL,
    name               varchar(255) NOT NULL,
    plan_tier          varchar(50) NOT NULL DEFAULT 'FREE',
    email_verified     boolean NOT NULL DEFAULT false,
    email_verified_at  timestamp,
    is_active          boolean NOT NULL DEFAULT true,
    monthly_token_used integer NOT NULL DEFAULT 0,
    monthly_token_reset date NOT NULL DEFAULT CURRENT_DATE,
    last_login_at      timestamp,
    login_count        integer NOT NULL DEFAULT 0,
    created_at         timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at         timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT check_plan_tier CHECK (plan_tier IN ('FREE', 'PLUS', 'PRO')),
    -- "emailVerified can only be TRUE if emailVerifiedAt is set"
    CONSTRAINT users_email_verified_needs_email_verified_at
        CHECK (NOT email_verified OR email_verified_at IS NOT NULL),
    CONSTRAINT users_monthly_token_used_non_negative CHECK (monthly_token_used >= 0),
    CONSTRAINT users_login_count_non_negative CHECK (login_count >= 0)
);

CREATE INDEX idx_users_email ON aichat.users (email);
CREATE INDEX idx_users_plan_tier ON aichat.users (plan_tier);
CREATE INDEX idx_users_is_active ON aichat.users (is_active);
CREATE INDEX idx_users_created_at ON aichat.users (created_at DESC);

CREATE TRIGGER trg_users_updated_at
    BEFORE UPDATE ON aichat.users
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- 2. sessions: user sessions and authentication ---------------------------------------------
CREATE TABLE aichat.sessions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          uuid NOT NULL,
    token            varchar(512) NOT NULL,
    user_agent       varchar(500),
    ip_address       inet,
    is_active        boolean NOT NULL DEFAULT true,
    expires_at       timestamp NOT NULL,
    created_at       timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    last_activity_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT sessions_token_key UNIQUE (token),
    CONSTRAINT fk_sessions_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE
);

CREATE INDEX idx_sessions_user_id ON aichat.sessions (user_id);
CREATE INDEX idx_sessions_token ON aichat.sessions (token);
CREATE INDEX idx_sessions_expires_at ON aichat.sessions (expires_at);

-- 3. email_verifications (emailVerifications): the email verification process ---------------
CREATE TABLE aichat.email_verifications (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL,
    email         varchar(255) NOT NULL,
    token         varchar(255) NOT NULL,
    is_verified   boolean NOT NULL DEFAULT false,
    verified_at   timestamp,
    expires_at    timestamp NOT NULL,
    attempt_count integer NOT NULL DEFAULT 0,
    created_at    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT email_verifications_token_key UNIQUE (token),
    CONSTRAINT fk_email_verifications_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE,
    CONSTRAINT email_verifications_is_verified_needs_verified_at
        CHECK (NOT is_verified OR verified_at IS NOT NULL),
    CONSTRAINT email_verifications_attempt_count_non_negative CHECK (attempt_count >= 0)
);

CREATE INDEX idx_email_verifications_user_id ON aichat.email_verifications (user_id);
CREATE INDEX idx_email_verifications_token ON aichat.email_verifications (token);
CREATE INDEX idx_email_verifications_expires_at ON aichat.email_verifications (expires_at);

CREATE TRIGGER trg_email_verifications_updated_at
    BEFORE UPDATE ON aichat.email_verifications
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- 4. password_resets (passwordResets): password reset tokens ---------------------------------
CREATE TABLE aichat.password_resets (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL,
    token      varchar(255) NOT NULL,
    email      varchar(255) NOT NULL,
    is_used    boolean NOT NULL DEFAULT false,
    used_at    timestamp,
    expires_at timestamp NOT NULL,
    created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT password_resets_token_key UNIQUE (token),
    CONSTRAINT fk_password_resets_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE,
    CONSTRAINT password_resets_is_used_needs_used_at CHECK (NOT is_used OR used_at IS NOT NULL)
);

CREATE INDEX idx_password_resets_user_id ON aichat.password_resets (user_id);
CREATE INDEX idx_password_resets_token ON aichat.password_resets (token);

-- =============================================================================================
-- Chat system
-- =============================================================================================

-- 5. conversations: chat conversations --------------------------------------------------------
CREATE TABLE aichat.conversations (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL,
    title         varchar(500) NOT NULL,
    description   text,
    model         varchar(100) NOT NULL,
    system_prompt text,
    -- Denormalized statistics, kept by the application in the transaction that writes the
    -- message (no trigger: see SCHEMA_NOTES.md).
    message_count integer NOT NULL DEFAULT 0,
    token_count   integer NOT NULL DEFAULT 0,
    is_archived   boolean NOT NULL DEFAULT false,
    archived_at   timestamp,
    created_at    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT fk_conversations_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE,
    -- "Options: gpt-4, gpt-4o, gpt-3.5-turbo, claude-3-opus, claude-3-sonnet"
    CONSTRAINT conversations_model_valid
        CHECK (model IN ('gpt-4', 'gpt-4o', 'gpt-3.5-turbo', 'claude-3-opus', 'claude-3-sonnet')),
    CONSTRAINT conversations_message_count_non_negative CHECK (message_count >= 0),
    CONSTRAINT conversations_token_count_non_negative CHECK (token_count >= 0),
    CONSTRAINT conversations_is_archived_needs_archived_at
        CHECK (NOT is_archived OR archived_at IS NOT NULL)
);

CREATE INDEX idx_conversations_user_id ON aichat.conversations (user_id);
CREATE INDEX idx_conversations_model ON aichat.conversations (model);
CREATE INDEX idx_conversations_created_at ON aichat.conversations (created_at DESC);
CREATE INDEX idx_conversations_is_archived ON aichat.conversations (is_archived);
-- Performance-critical / analytics indexes of the seed's "Indexes" section.
CREATE INDEX idx_conversations_user_id_created_at
    ON aichat.conversations (user_id, created_at DESC);
CREATE INDEX idx_conversations_user_id_model_created_at
    ON aichat.conversations (user_id, model, created_at DESC);

CREATE TRIGGER trg_conversations_updated_at
    BEFORE UPDATE ON aichat.conversations
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- 6. messages: individual chat messages -------------------------------------------------------
CREATE TABLE aichat.messages (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id   uuid NOT NULL,
    role              varchar(50) NOT NULL,
    content           text NOT NULL,
    token_count       integer NOT NULL DEFAULT 0,
    prompt_tokens     integer,
    completion_tokens integer,
    model             varchar(100),
    language          varchar(10),
    is_deleted        boolean NOT NULL DEFAULT false,
    deleted_at        timestamp,
    created_at        timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at        timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT fk_messages_conversation_id FOREIGN KEY (conversation_id)
        REFERENCES aichat.conversations (id) ON DELETE CASCADE,
    CONSTRAINT check_role CHECK (role IN ('user', 'assistant')),
    CONSTRAINT messages_token_count_non_negative CHECK (token_count >= 0),
    CONSTRAINT messages_prompt_tokens_non_negative CHECK (prompt_tokens >= 0),
    CONSTRAINT messages_completion_tokens_non_negative CHECK (completion_tokens >= 0),
    CONSTRAINT messages_is_deleted_needs_deleted_at
        CHECK (NOT is_deleted OR deleted_at IS NOT NULL)
);

CREATE INDEX idx_messages_conversation_id ON aichat.messages (conversation_id);
CREATE INDEX idx_messages_role ON aichat.messages (role);
-- Listed twice by the seed (table 6 and "Time-based queries"); created once.
CREATE INDEX idx_messages_created_at ON aichat.messages (created_at DESC);
CREATE INDEX idx_messages_model ON aichat.messages (model);
CREATE INDEX idx_messages_conversation_id_created_at
    ON aichat.messages (conversation_id, created_at DESC);

CREATE TRIGGER trg_messages_updated_at
    BEFORE UPDATE ON aichat.messages
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- 7. token_usage (tokenUsage): token usage for billing and analytics --------------------------
CREATE TABLE aichat.token_usage (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL,
    conversation_id   uuid,
    message_id        uuid,
    provider          varchar(100) NOT NULL,
    model             varchar(100) NOT NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    total_tokens      integer NOT NULL,
    -- numeric(10,6): up to $9,999.999999
    cost_usd          numeric(10, 6) NOT NULL,
    -- First day of the month, for easy aggregation.
    billing_month     date NOT NULL,
    created_at        timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT fk_token_usage_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE,
    CONSTRAINT fk_token_usage_conversation_id FOREIGN KEY (conversation_id)
        REFERENCES aichat.conversations (id) ON DELETE SET NULL,
    CONSTRAINT fk_token_usage_message_id FOREIGN KEY (message_id)
        REFERENCES aichat.messages (id) ON DELETE SET NULL,
    CONSTRAINT check_providers CHECK (provider IN ('openai', 'anthropic', 'google')),
    CONSTRAINT token_usage_prompt_tokens_non_negative CHECK (prompt_tokens >= 0),
    CONSTRAINT token_usage_completion_tokens_non_negative CHECK (completion_tokens >= 0),
    CONSTRAINT token_usage_total_tokens_is_sum
        CHECK (total_tokens = prompt_tokens + completion_tokens),
    CONSTRAINT token_usage_cost_usd_non_negative CHECK (cost_usd >= 0),
    CONSTRAINT token_usage_billing_month_first_day
        CHECK (extract(day FROM billing_month) = 1)
);

CREATE INDEX idx_token_usage_user_id ON aichat.token_usage (user_id);
CREATE INDEX idx_token_usage_user_id_billing_month ON aichat.token_usage (user_id, billing_month);
CREATE INDEX idx_token_usage_conversation_id ON aichat.token_usage (conversation_id);
CREATE INDEX idx_token_usage_model ON aichat.token_usage (model);
CREATE INDEX idx_token_usage_created_at ON aichat.token_usage (created_at DESC);
CREATE INDEX idx_token_usage_user_id_model ON aichat.token_usage (user_id, model);
CREATE INDEX idx_token_usage_billing_month ON aichat.token_usage (billing_month);
CREATE INDEX idx_token_usage_user_id_billing_month_model
    ON aichat.token_usage (user_id, billing_month, model);
-- Not in the seed: the FK index for message_id, so deleting a message (ON DELETE SET NULL)
-- does not scan token_usage.
CREATE INDEX idx_token_usage_message_id ON aichat.token_usage (message_id);

-- 13. ai_providers (aiProviders): AI provider pricing and limits ------------------------------
CREATE TABLE aichat.ai_providers (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                     varchar(100) NOT NULL,
    -- Pricing per 1K tokens.
    input_token_cost_per_1k  numeric(10, 8) NOT NULL,
    output_token_cost_per_1k numeric(10, 8) NOT NULL,
    -- Rate limits; NULL = no limit.
    requests_per_minute      integer,
    requests_per_day         integer,
    supported_models         json NOT NULL DEFAULT '[]',
    is_active                boolean NOT NULL DEFAULT true,
    is_available             boolean NOT NULL DEFAULT true,
    created_at               timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at               timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT ai_providers_name_key UNIQUE (name),
    -- "Values: openai, anthropic, google"
    CONSTRAINT ai_providers_name_valid CHECK (name IN ('openai', 'anthropic', 'google')),
    CONSTRAINT ai_providers_input_token_cost_per_1k_non_negative
        CHECK (input_token_cost_per_1k >= 0),
    CONSTRAINT ai_providers_output_token_cost_per_1k_non_negative
        CHECK (output_token_cost_per_1k >= 0),
    CONSTRAINT ai_providers_requests_per_minute_positive CHECK (requests_per_minute > 0),
    CONSTRAINT ai_providers_requests_per_day_positive CHECK (requests_per_day > 0),
    CONSTRAINT ai_providers_supported_models_is_array
        CHECK (json_typeof(supported_models) = 'array')
);

CREATE INDEX idx_ai_providers_name ON aichat.ai_providers (name);
CREATE INDEX idx_ai_providers_is_active ON aichat.ai_providers (is_active);

CREATE TRIGGER trg_ai_providers_updated_at
    BEFORE UPDATE ON aichat.ai_providers
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- =============================================================================================
-- Billing system
-- =============================================================================================

-- 8. plans: subscription plans ----------------------------------------------------------------
CREATE TABLE aichat.plans (
    id                            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                          varchar(100) NOT NULL,
    -- Stripe Price ID for webhook handling.
    stripe_price_id               varchar(255),
    monthly_price                 numeric(10, 2) NOT NULL,
    yearly_price                  numeric(10, 2),
    monthly_token_quota           integer NOT NULL,
    -- NULL = unlimited.
    max_conversations             integer,
    max_messages_per_conversation integer,
    -- JSON array of feature names.
    features                      json NOT NULL DEFAULT '[]',
    is_active                     boolean NOT NULL DEFAULT true,
    created_at                    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at                    timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT plans_name_key UNIQUE (name),
    -- "Values: Free, Plus, Pro"
    CONSTRAINT plans_name_valid CHECK (name IN ('Free', 'Plus', 'Pro')),
    CONSTRAINT plans_monthly_price_non_negative CHECK (monthly_price >= 0),
    CONSTRAINT plans_yearly_price_non_negative CHECK (yearly_price >= 0),
    CONSTRAINT plans_monthly_token_quota_non_negative CHECK (monthly_token_quota >= 0),
    CONSTRAINT plans_max_conversations_positive CHECK (max_conversations > 0),
    CONSTRAINT plans_max_messages_per_conversation_positive
        CHECK (max_messages_per_conversation > 0),
    CONSTRAINT plans_features_is_array CHECK (json_typeof(features) = 'array')
);

CREATE INDEX idx_plans_name ON aichat.plans (name);
CREATE INDEX idx_plans_is_active ON aichat.plans (is_active);

CREATE TRIGGER trg_plans_updated_at
    BEFORE UPDATE ON aichat.plans
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- 9. subscriptions: user subscriptions (one row per user) -------------------------------------
CREATE TABLE aichat.subscriptions (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid NOT NULL,
    plan_id                uuid NOT NULL,
    stripe_subscription_id varchar(255) NOT NULL,
    stripe_customer_id     varchar(255) NOT NULL,
    status                 varchar(50) NOT NULL DEFAULT 'active',
    current_period_start   timestamp NOT NULL,
    current_period_end     timestamp NOT NULL,
    cancellation_date      timestamp,
    cancellation_reason    varchar(255),
    cancel_at_period_end   boolean NOT NULL DEFAULT false,
    trial_ends_at          timestamp,
    created_at             timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at             timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT subscriptions_user_id_key UNIQUE (user_id),
    CONSTRAINT subscriptions_stripe_subscription_id_key UNIQUE (stripe_subscription_id),
    CONSTRAINT fk_subscriptions_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE,
    -- No ON DELETE in the seed's DDL: a plan that has subscriptions cannot be deleted.
    CONSTRAINT fk_subscriptions_plan_id FOREIGN KEY (plan_id) REFERENCES aichat.plans (id),
    CONSTRAINT check_subscription_status
        CHECK (status IN ('active', 'canceled', 'past_due', 'unpaid', 'paused')),
    CONSTRAINT subscriptions_period_end_after_start
        CHECK (current_period_end > current_period_start)
);

CREATE INDEX idx_subscriptions_user_id ON aichat.subscriptions (user_id);
CREATE INDEX idx_subscriptions_plan_id ON aichat.subscriptions (plan_id);
CREATE INDEX idx_subscriptions_status ON aichat.subscriptions (status);
CREATE INDEX idx_subscriptions_current_period_end ON aichat.subscriptions (current_period_end);
CREATE INDEX idx_subscriptions_user_id_status ON aichat.subscriptions (user_id, status);

CREATE TRIGGER trg_subscriptions_updated_at
    BEFORE UPDATE ON aichat.subscriptions
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- 10. payments: payment transactions ----------------------------------------------------------
CREATE TABLE aichat.payments (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                  uuid NOT NULL,
    subscription_id          uuid,
    stripe_payment_intent_id varchar(255) NOT NULL,
    stripe_invoice_id        varchar(255),
    amount                   numeric(10, 2) NOT NULL,
    currency                 varchar(3) NOT NULL DEFAULT 'USD',
    status                   varchar(50) NOT NULL,
    description              text,
    metadata                 json,
    created_at               timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at               timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT payments_stripe_payment_intent_id_key UNIQUE (stripe_payment_intent_id),
    CONSTRAINT fk_payments_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE,
    CONSTRAINT fk_payments_subscription_id FOREIGN KEY (subscription_id)
        REFERENCES aichat.subscriptions (id) ON DELETE SET NULL,
    CONSTRAINT check_status CHECK (status IN ('succeeded', 'failed', 'pending', 'refunded')),
    CONSTRAINT payments_amount_non_negative CHECK (amount >= 0),
    CONSTRAINT payments_currency_format CHECK (currency ~ '^[A-Z]{3}$')
);

CREATE INDEX idx_payments_user_id ON aichat.payments (user_id);
CREATE INDEX idx_payments_subscription_id ON aichat.payments (subscription_id);
CREATE INDEX idx_payments_status ON aichat.payments (status);
CREATE INDEX idx_payments_created_at ON aichat.payments (created_at DESC);
CREATE INDEX idx_payments_user_id_created_at ON aichat.payments (user_id, created_at DESC);

CREATE TRIGGER trg_payments_updated_at
    BEFORE UPDATE ON aichat.payments
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- 11. invoices: invoice records for accounting ------------------------------------------------
CREATE TABLE aichat.invoices (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid NOT NULL,
    subscription_id   uuid,
    invoice_number    varchar(50) NOT NULL,
    stripe_invoice_id varchar(255) NOT NULL,
    subtotal          numeric(10, 2) NOT NULL,
    tax               numeric(10, 2) NOT NULL DEFAULT 0,
    total             numeric(10, 2) NOT NULL,
    status            varchar(50) NOT NULL DEFAULT 'draft',
    due_date          date,
    paid_at           timestamp,
    pdf_url           varchar(500),
    created_at        timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at        timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT invoices_invoice_number_key UNIQUE (invoice_number),
    CONSTRAINT invoices_stripe_invoice_id_key UNIQUE (stripe_invoice_id),
    CONSTRAINT fk_invoices_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE,
    CONSTRAINT fk_invoices_subscription_id FOREIGN KEY (subscription_id)
        REFERENCES aichat.subscriptions (id) ON DELETE SET NULL,
    -- "Values: draft, open, paid, void, uncollectible"
    CONSTRAINT invoices_status_valid
        CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    CONSTRAINT invoices_paid_needs_paid_at CHECK (status <> 'paid' OR paid_at IS NOT NULL)
);

CREATE INDEX idx_invoices_user_id ON aichat.invoices (user_id);
CREATE INDEX idx_invoices_status ON aichat.invoices (status);
-- Not in the seed: the FK index for subscription_id (ON DELETE SET NULL).
CREATE INDEX idx_invoices_subscription_id ON aichat.invoices (subscription_id);

CREATE TRIGGER trg_invoices_updated_at
    BEFORE UPDATE ON aichat.invoices
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();

-- 12. usage_tracking (usageTracking): monthly usage for quota enforcement, one row per user ----
CREATE TABLE aichat.usage_tracking (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL,
    -- First day of the current billing month.
    billing_month       date NOT NULL,
    tokens_used         integer NOT NULL DEFAULT 0,
    messages_count      integer NOT NULL DEFAULT 0,
    conversations_count integer NOT NULL DEFAULT 0,
    -- Cached from the plan.
    monthly_quota       integer NOT NULL,
    cost_this_month     numeric(10, 6) NOT NULL DEFAULT 0,
    created_at          timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at          timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT usage_tracking_user_id_key UNIQUE (user_id),
    CONSTRAINT fk_usage_tracking_user_id FOREIGN KEY (user_id)
        REFERENCES aichat.users (id) ON DELETE CASCADE,
    CONSTRAINT usage_tracking_billing_month_first_day
        CHECK (extract(day FROM billing_month) = 1),
    CONSTRAINT usage_tracking_tokens_used_non_negative CHECK (tokens_used >= 0),
    CONSTRAINT usage_tracking_messages_count_non_negative CHECK (messages_count >= 0),
    CONSTRAINT usage_tracking_conversations_count_non_negative CHECK (conversations_count >= 0),
    CONSTRAINT usage_tracking_monthly_quota_non_negative CHECK (monthly_quota >= 0),
    CONSTRAINT usage_tracking_cost_this_month_non_negative CHECK (cost_this_month >= 0)
);

CREATE INDEX idx_usage_tracking_user_id ON aichat.usage_tracking (user_id);
CREATE INDEX idx_usage_tracking_billing_month ON aichat.usage_tracking (billing_month);

CREATE TRIGGER trg_usage_tracking_updated_at
    BEFORE UPDATE ON aichat.usage_tracking
    FOR EACH ROW EXECUTE FUNCTION aichat.update_updated_at_column();
