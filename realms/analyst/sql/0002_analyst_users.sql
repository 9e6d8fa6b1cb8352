-- Core identity tables (seed 000, tables 1-3): analyst.users, analyst.otp_verifications,
-- analyst.analyst_profiles, with their constraints, indexes and updated_at triggers.
-- The subscriber counters on analyst_profiles are maintained by triggers in 0003; the review
-- and post counters by triggers in 0004.

-- 1. users -----------------------------------------------------------------------------------
CREATE TABLE analyst.users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email           varchar(255),
    phone           varchar(20),
    password_hash   varchar(255) NOT NULL,
    user_type       varchar(20)  NOT NULL,
    email_verified  boolean      NOT NULL DEFAULT false,
    phone_verified  boolean      NOT NULL DEFAULT false,
    is_active       boolean      NOT NULL DEFAULT true,
    last_active     timestamptz,
    login_count     integer      NOT NULL DEFAULT 0,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_or_phone_required CHECK (email IS NOT NULL OR phone IS NOT NULL),
    CONSTRAINT users_email_format
        CHECK (email ~* '^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$'),
    CONSTRAINT users_phone_format CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    CONSTRAINT users_user_type_valid CHECK (user_type IN ('analyst', 'trader', 'admin')),
    CONSTRAINT users_login_count_non_negative CHECK (login_count >= 0)
);

-- Login lookups. idx_users_email also makes e-mail unique case-insensitively (Foo@x.in and
-- foo@x.in are one account); login queries should use lower(email) = lower($1).
-- idx_users_phone is the uniqueness of phone (E.164 is already canonical).
CREATE UNIQUE INDEX idx_users_email ON analyst.users (lower(email));
CREATE UNIQUE INDEX idx_users_phone ON analyst.users (phone);
CREATE INDEX idx_users_user_type ON analyst.users (user_type) WHERE deleted_at IS NULL;
CREATE INDEX idx_users_is_active ON analyst.users (is_active, last_active DESC)
    WHERE deleted_at IS NULL;

CREATE TRIGGER trg_users_updated_at
    BEFORE UPDATE ON analyst.users
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- 2. otp_verifications -----------------------------------------------------------------------
CREATE TABLE analyst.otp_verifications (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid REFERENCES analyst.users (id) ON DELETE CASCADE,  -- NULL during signup
    phone         varchar(20),
    email         varchar(255),
    otp_code      varchar(6)  NOT NULL,
    purpose       varchar(50) NOT NULL,
    verified      boolean     NOT NULL DEFAULT false,
    verified_at   timestamptz,
    expires_at    timestamptz NOT NULL DEFAULT (now() + interval '10 minutes'),
    attempts      integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 3,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT otp_verifications_target_required CHECK (phone IS NOT NULL OR email IS NOT NULL),
    CONSTRAINT otp_verifications_phone_format CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    CONSTRAINT otp_verifications_email_format
        CHECK (email ~* '^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$'),
    CONSTRAINT otp_verifications_otp_code_format CHECK (otp_code ~ '^[0-9]{6}$'),
    CONSTRAINT otp_verifications_purpose_valid
        CHECK (purpose IN ('signup', 'login', 'reset_password', 'verify_phone', 'verify_email')),
    CONSTRAINT otp_verifications_max_attempts_positive CHECK (max_attempts >= 1),
    CONSTRAINT otp_verifications_attempts_within_max CHECK (attempts BETWEEN 0 AND max_attempts)
);

CREATE INDEX idx_otp_verifications_user_id ON analyst.otp_verifications (user_id)
    WHERE user_id IS NOT NULL;
-- "Latest OTP for this phone/email and purpose".
CREATE INDEX idx_otp_verifications_phone_lookup
    ON analyst.otp_verifications (phone, purpose, created_at DESC) WHERE phone IS NOT NULL;
CREATE INDEX idx_otp_verifications_email_lookup
    ON analyst.otp_verifications (email, purpose, created_at DESC) WHERE email IS NOT NULL;
-- cleanup_expired_otps() (0003).
CREATE INDEX idx_otp_verifications_expires_at ON analyst.otp_verifications (expires_at);

CREATE TRIGGER trg_otp_verifications_updated_at
    BEFORE UPDATE ON analyst.otp_verifications
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- 3. analyst_profiles ------------------------------------------------------------------------
CREATE TABLE analyst.analyst_profiles (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                 uuid NOT NULL REFERENCES analyst.users (id) ON DELETE CASCADE,
    display_name            varchar(255) NOT NULL,
    bio                     text,
    photo_url               varchar(500),
    specializations         text[],
    languages               text[],
    country                 varchar(2)   NOT NULL DEFAULT 'IN',
    sebi_number             varchar(50),
    ria_number              varchar(50),
    verification_status     varchar(20)  NOT NULL DEFAULT 'pending',
    verification_documents  jsonb,
    verified_at             timestamptz,
    verified_by             uuid REFERENCES analyst.users (id) ON DELETE SET NULL,
    rejection_reason        text,
    avg_rating              numeric(3, 2) NOT NULL DEFAULT 0,
    total_reviews           integer      NOT NULL DEFAULT 0,
    total_subscribers       integer      NOT NULL DEFAULT 0,
    active_subscribers      integer      NOT NULL DEFAULT 0,
    total_posts             integer      NOT NULL DEFAULT 0,
    monthly_revenue         integer      NOT NULL DEFAULT 0,
    commission_rate         numeric(4, 3) NOT NULL DEFAULT 0.200,
    is_featured             boolean      NOT NULL DEFAULT false,
    feature_position        integer,
    created_at              timestamptz  NOT NULL DEFAULT now(),
    updated_at              timestamptz  NOT NULL DEFAULT now(),
    last_post_at            timestamptz,
    deleted_at              timestamptz,
    CONSTRAINT analyst_profiles_user_id_key UNIQUE (user_id),
    CONSTRAINT analyst_profiles_sebi_number_key UNIQUE (sebi_number),
    CONSTRAINT analyst_profiles_ria_number_key UNIQUE (ria_number),
    CONSTRAINT analyst_profiles_bio_length CHECK (char_length(bio) <= 2000),
    CONSTRAINT analyst_profiles_country_format CHECK (country ~ '^[A-Z]{2}$'),
    CONSTRAINT analyst_profiles_verification_status_valid
        CHECK (verification_status IN ('pending', 'in_review', 'approved', 'rejected')),
    CONSTRAINT analyst_profiles_verification_documents_array
        CHECK (jsonb_typeof(verification_documents) = 'array'),
    CONSTRAINT analyst_profiles_avg_rating_range CHECK (avg_rating BETWEEN 0 AND 5),
    CONSTRAINT analyst_profiles_commission_rate_range CHECK (commission_rate BETWEEN 0 AND 1),
    CONSTRAINT analyst_profiles_counters_non_negative CHECK (
        total_reviews >= 0 AND total_subscribers >= 0 AND active_subscribers >= 0
        AND total_posts >= 0 AND monthly_revenue >= 0
    )
);

-- user_id is indexed by analyst_profiles_user_id_key (the one-to-one constraint).
CREATE INDEX idx_analyst_profiles_verified_by ON analyst.analyst_profiles (verified_by)
    WHERE verified_by IS NOT NULL;
CREATE INDEX idx_analyst_profiles_discovery
    ON analyst.analyst_profiles (avg_rating DESC, active_subscribers DESC)
    WHERE deleted_at IS NULL AND verification_status = 'approved';
CREATE INDEX idx_analyst_profiles_specializations
    ON analyst.analyst_profiles USING gin (specializations);
CREATE INDEX idx_analyst_profiles_languages ON analyst.analyst_profiles USING gin (languages);
CREATE INDEX idx_analyst_profiles_verification
    ON analyst.analyst_profiles (verification_status, created_at);
CREATE INDEX idx_analyst_profiles_featured ON analyst.analyst_profiles (feature_position)
    WHERE is_featured AND deleted_at IS NULL;

CREATE TRIGGER trg_analyst_profiles_updated_at
    BEFORE UPDATE ON analyst.analyst_profiles
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();
