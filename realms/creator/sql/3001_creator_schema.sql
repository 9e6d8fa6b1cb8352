-- Creator realm (seed 003, "Creator Platform"), part 1 of 10: schema `creator`, the helpers
-- every later creator migration uses, and the identity tables users, user_profiles and
-- user_sessions.
--
-- Conventions of every creator file (readings of the prose: realms/creator/SCHEMA_NOTES.md):
-- * Types and statuses are varchar columns with a named CHECK `<table>_<column>_valid`, not
--   Postgres enums: a CHECK names itself in the error, and a value list changes with an
--   ordinary ALTER TABLE inside the migration's transaction.
-- * Money is bigint in minor units (cents), never negative unless a column says so; each
--   amount column carries a COMMENT saying so.
-- * Ids are uuid v4 from the core's gen_random_uuid() (PostgreSQL 13+, no extension needed);
--   timestamps are timestamptz; mutable tables have created_at/updated_at with a
--   trg_<table>_updated_at trigger; append-only tables (events, logs) have created_at only.
-- * No extension is created: nothing in schema `creator` needs one (gen_random_uuid and
--   sha256 are core functions), and creating one here could put objects into `public`.

CREATE SCHEMA IF NOT EXISTS creator;

-- ---------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------

-- updated_at = now() on every UPDATE of a row.
CREATE FUNCTION creator.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- The user a request acts for, from the transaction-local setting `creator.user_id`
-- (set_config('creator.user_id', $1, true)); NULL when unset. Row-level security policies
-- (3010) and the audit trigger (3008) read it.
CREATE FUNCTION creator.current_user_id() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('creator.user_id', true), '')::uuid;
$$;

-- ---------------------------------------------------------------------------------------------
-- users: accounts with authentication and basic profile information
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username            varchar(30)  NOT NULL,
    email               varchar(255) NOT NULL,
    password_hash       varchar(255) NOT NULL,
    display_name        varchar(100),
    account_type        varchar(20)  NOT NULL DEFAULT 'fan',
    subscription_price  bigint,
    currency            char(3)      NOT NULL DEFAULT 'USD',
    date_of_birth       date,
    age_verified        boolean      NOT NULL DEFAULT false,
    age_verified_at     timestamptz,
    email_verified      boolean      NOT NULL DEFAULT false,
    account_status      varchar(20)  NOT NULL DEFAULT 'active',
    status_reason       text,
    suspended_until     timestamptz,
    last_login_at       timestamptz,
    created_at          timestamptz  NOT NULL DEFAULT now(),
    updated_at          timestamptz  NOT NULL DEFAULT now(),
    deleted_at          timestamptz,

    CONSTRAINT users_username_format CHECK (username ~ '^[A-Za-z0-9_.]{3,30}$'),
    CONSTRAINT users_email_format
        CHECK (email ~* '^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$'),
    -- "Secure password hashing (bcrypt)": only a bcrypt hash is stored.
    CONSTRAINT users_password_hash_bcrypt
        CHECK (password_hash ~ '^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$'),
    CONSTRAINT users_display_name_not_blank CHECK (btrim(display_name) <> ''),
    CONSTRAINT users_account_type_valid
        CHECK (account_type IN ('fan', 'creator', 'admin', 'moderator')),
    CONSTRAINT users_subscription_price_non_negative CHECK (subscription_price >= 0),
    -- "Set by creators for monthly subscriptions".
    CONSTRAINT users_subscription_price_creator_only
        CHECK (subscription_price IS NULL OR account_type = 'creator'),
    CONSTRAINT users_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    -- Verification is recorded with its time, and only an adult can be verified.
    CONSTRAINT users_age_verified_has_time CHECK (NOT age_verified OR age_verified_at IS NOT NULL),
    CONSTRAINT users_age_verified_adult
        CHECK (NOT age_verified OR (date_of_birth IS NOT NULL AND date_of_birth
               <= ((age_verified_at AT TIME ZONE 'UTC')::date - interval '18 years'))),
    CONSTRAINT users_account_status_valid
        CHECK (account_status IN ('active', 'suspended', 'banned', 'deactivated')),
    -- A suspension has an end; no other status has one.
    CONSTRAINT users_suspended_until_matches_status
        CHECK ((account_status = 'suspended') = (suspended_until IS NOT NULL))
);

COMMENT ON COLUMN creator.users.subscription_price IS
    'Monthly subscription price in minor units (cents) of currency; creators only';

-- The seed's indexes, exactly as listed ("User lookups").
CREATE INDEX idx_users_username ON creator.users (username);
CREATE INDEX idx_users_email ON creator.users (email);
CREATE INDEX idx_users_account_type ON creator.users (account_type);
-- Usernames and e-mails are unique case-insensitively, soft-deleted accounts included.
CREATE UNIQUE INDEX users_username_lower_key ON creator.users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON creator.users (lower(email));
-- "User Searches: Full-text search on username and display name". Queries must repeat the
-- expression: to_tsvector('simple', username || ' ' || coalesce(display_name, '')).
CREATE INDEX idx_users_search ON creator.users
    USING gin (to_tsvector('simple', username || ' ' || coalesce(display_name, '')));
-- lift_expired_suspensions() (3009).
CREATE INDEX idx_users_suspended_until ON creator.users (suspended_until)
    WHERE account_status = 'suspended';

CREATE TRIGGER trg_users_updated_at
    BEFORE UPDATE ON creator.users
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- user_profiles: extended profile of one user (social links, categories, preferences,
-- characteristics, location and demographics) and the creator's messaging rule
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.user_profiles (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                   uuid NOT NULL,
    bio                       text,
    avatar_url                varchar(1000),
    cover_image_url           varchar(1000),
    website_url               varchar(1000),
    social_links              jsonb NOT NULL DEFAULT '{}',
    content_categories        text[] NOT NULL DEFAULT '{}',
    preferences               jsonb NOT NULL DEFAULT '{}',
    notification_preferences  jsonb NOT NULL DEFAULT '{}',
    gender                    varchar(30),
    languages                 text[] NOT NULL DEFAULT '{}',
    country                   char(2),
    region                    varchar(100),
    city                      varchar(100),
    timezone                  varchar(64),
    allow_messages_from       varchar(20) NOT NULL DEFAULT 'subscribers',
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT user_profiles_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT user_profiles_user_id_key UNIQUE (user_id),
    CONSTRAINT user_profiles_bio_length CHECK (char_length(bio) <= 2000),
    CONSTRAINT user_profiles_social_links_object CHECK (jsonb_typeof(social_links) = 'object'),
    CONSTRAINT user_profiles_preferences_object CHECK (jsonb_typeof(preferences) = 'object'),
    CONSTRAINT user_profiles_notification_preferences_object
        CHECK (jsonb_typeof(notification_preferences) = 'object'),
    CONSTRAINT user_profiles_country_format CHECK (country ~ '^[A-Z]{2}$'),
    -- Who may open a conversation with this creator.
    CONSTRAINT user_profiles_allow_messages_from_valid
        CHECK (allow_messages_from IN ('everyone', 'followers', 'subscribers', 'nobody'))
);

-- "Content categorization": creators by category.
CREATE INDEX idx_user_profiles_content_categories ON creator.user_profiles
    USING gin (content_categories);

CREATE TRIGGER trg_user_profiles_updated_at
    BEFORE UPDATE ON creator.user_profiles
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- user_sessions: login sessions (JWT refresh tokens, stored hashed), cleaned up after 30 days
-- of inactivity (seed: "User Sessions | 30 days | Cleanup"; cleanup_user_sessions() in 3009)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.user_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL,
    token_hash      char(64) NOT NULL,
    ip_address      inet,
    user_agent      text,
    last_active_at  timestamptz,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT user_sessions_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT user_sessions_token_hash_key UNIQUE (token_hash),
    -- sha256 of the token, lower-case hex; the token itself is never stored.
    CONSTRAINT user_sessions_token_hash_format CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT user_sessions_expires_after_creation CHECK (expires_at > created_at)
);

CREATE INDEX idx_user_sessions_user_id ON creator.user_sessions (user_id);
CREATE INDEX idx_user_sessions_last_activity ON creator.user_sessions
    ((coalesce(last_active_at, created_at)));

CREATE TRIGGER trg_user_sessions_updated_at
    BEFORE UPDATE ON creator.user_sessions
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();
