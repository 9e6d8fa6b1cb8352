-- Users and authentication (seed 004, section 1): market.users, admin_roles, user_sessions,
-- user_addresses, their constraints, indexes and updated_at triggers.
-- Conventions of every market file: ids are bigserial; the seed's TIMESTAMP is timestamptz;
-- booleans and counters that have a default are also NOT NULL; a UNIQUE column that the seed
-- also indexes gets one unique index under the seed's index name; every foreign-key column
-- leads an index. See realms/market/SCHEMA_NOTES.md.

-- ---------------------------------------------------------------------------------------------
-- users: every platform participant (admin, buyer, seller, courier)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.users (
    id              bigserial PRIMARY KEY,
    uuid            uuid NOT NULL DEFAULT gen_random_uuid(),
    email           varchar(255) NOT NULL,
    phone           varchar(20),
    password_hash   varchar(255) NOT NULL,
    first_name      varchar(100) NOT NULL,
    last_name       varchar(100) NOT NULL,
    avatar_url      text,
    role            market.user_role_enum NOT NULL,
    status          market.user_status_enum NOT NULL DEFAULT 'active',
    email_verified  boolean NOT NULL DEFAULT false,
    phone_verified  boolean NOT NULL DEFAULT false,
    last_login_at   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,

    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_format
        CHECK (email ~* '^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$'),
    -- "Phone number with country code": E.164, no spaces or dashes.
    CONSTRAINT users_phone_format CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    CONSTRAINT users_first_name_not_blank CHECK (first_name ~ '\S'),
    CONSTRAINT users_last_name_not_blank CHECK (last_name ~ '\S'),
    -- "Bcrypt hashed password": $2a$/$2b$/$2y$, cost, 53 characters of salt and hash.
    CONSTRAINT users_password_hash_bcrypt
        CHECK (password_hash ~ '^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$')
);

-- idx_users_email also makes e-mail unique case-insensitively; log in with
-- lower(email) = lower($1). idx_users_phone and idx_users_uuid are the seed's UNIQUEs.
CREATE UNIQUE INDEX idx_users_email ON market.users (lower(email));
CREATE UNIQUE INDEX idx_users_phone ON market.users (phone);
CREATE UNIQUE INDEX idx_users_uuid ON market.users (uuid);
CREATE INDEX idx_users_role ON market.users (role);
CREATE INDEX idx_users_status ON market.users (status);

CREATE TRIGGER trg_users_updated_at
    BEFORE UPDATE ON market.users
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- admin_roles: granular permissions for admin users
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.admin_roles (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL,
    role_type    market.admin_role_enum NOT NULL,
    permissions  jsonb NOT NULL,
    granted_by   bigint,
    granted_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT admin_roles_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE CASCADE,
    CONSTRAINT admin_roles_granted_by_fkey FOREIGN KEY (granted_by)
        REFERENCES market.users (id) ON DELETE SET NULL,
    CONSTRAINT admin_roles_user_id_role_type_key UNIQUE (user_id, role_type),
    CONSTRAINT admin_roles_permissions_object CHECK (jsonb_typeof(permissions) = 'object'),
    CONSTRAINT admin_roles_expires_after_granted CHECK (expires_at > granted_at)
);

CREATE INDEX idx_admin_roles_user_id ON market.admin_roles (user_id);
CREATE INDEX idx_admin_roles_type ON market.admin_roles (role_type);
CREATE INDEX idx_admin_roles_granted_by ON market.admin_roles (granted_by)
    WHERE granted_by IS NOT NULL;

CREATE TRIGGER trg_admin_roles_updated_at
    BEFORE UPDATE ON market.admin_roles
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
CREATE TRIGGER trg_admin_roles_user_role
    BEFORE INSERT OR UPDATE OF user_id ON market.admin_roles
    FOR EACH ROW EXECUTE FUNCTION market.require_user_role('user_id', 'admin');
CREATE TRIGGER trg_admin_roles_granted_by_role
    BEFORE INSERT OR UPDATE OF granted_by ON market.admin_roles
    FOR EACH ROW EXECUTE FUNCTION market.require_user_role('granted_by', 'admin');

-- Does the user hold this admin role now (not expired)? super_admin holds every role.
CREATE FUNCTION market.has_admin_role(p_user_id bigint, p_role market.admin_role_enum)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM market.admin_roles r
          JOIN market.users u ON u.id = r.user_id
         WHERE r.user_id = p_user_id
           AND r.role_type IN (p_role, 'super_admin')
           AND (r.expires_at IS NULL OR r.expires_at > now())
           AND u.status = 'active' AND u.deleted_at IS NULL
    );
$$;

-- ---------------------------------------------------------------------------------------------
-- user_sessions: active sessions for authentication
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.user_sessions (
    id                bigserial PRIMARY KEY,
    user_id           bigint NOT NULL,
    token             varchar(255) NOT NULL,
    refresh_token     varchar(255),
    ip_address        inet,
    user_agent        text,
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_activity_at  timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT user_sessions_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE CASCADE,
    CONSTRAINT user_sessions_refresh_token_key UNIQUE (refresh_token),
    CONSTRAINT user_sessions_expires_after_created CHECK (expires_at > created_at)
);

CREATE INDEX idx_sessions_user_id ON market.user_sessions (user_id);
CREATE UNIQUE INDEX idx_sessions_token ON market.user_sessions (token);
CREATE INDEX idx_sessions_expires_at ON market.user_sessions (expires_at);

CREATE TRIGGER trg_user_sessions_updated_at
    BEFORE UPDATE ON market.user_sessions
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- user_addresses: delivery and billing addresses
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.user_addresses (
    id                     bigserial PRIMARY KEY,
    user_id                bigint NOT NULL,
    type                   market.address_type_enum NOT NULL,
    is_default             boolean NOT NULL DEFAULT false,
    label                  varchar(50),
    full_name              varchar(200) NOT NULL,
    phone                  varchar(20) NOT NULL,
    country                varchar(100) NOT NULL,
    city                   varchar(100) NOT NULL,
    district               varchar(100),
    street                 varchar(255) NOT NULL,
    building               varchar(50),
    apartment              varchar(50),
    postal_code            varchar(20),
    latitude               numeric(10, 8),
    longitude              numeric(11, 8),
    delivery_instructions  text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    deleted_at             timestamptz,

    CONSTRAINT user_addresses_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE CASCADE,
    -- Target of orders' "the delivery address is the buyer's" foreign key.
    CONSTRAINT user_addresses_id_user_id_key UNIQUE (id, user_id),
    CONSTRAINT user_addresses_phone_format CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    CONSTRAINT user_addresses_latitude_range CHECK (latitude BETWEEN -90 AND 90),
    CONSTRAINT user_addresses_longitude_range CHECK (longitude BETWEEN -180 AND 180),
    CONSTRAINT user_addresses_coordinates_paired
        CHECK ((latitude IS NULL) = (longitude IS NULL))
);

CREATE INDEX idx_addresses_user_id ON market.user_addresses (user_id);
CREATE INDEX idx_addresses_is_default ON market.user_addresses (user_id, is_default);
CREATE INDEX idx_addresses_location ON market.user_addresses (latitude, longitude);
-- At most one live default address per user and address type.
CREATE UNIQUE INDEX idx_addresses_one_default ON market.user_addresses (user_id, type)
    WHERE is_default AND deleted_at IS NULL;

CREATE TRIGGER trg_user_addresses_updated_at
    BEFORE UPDATE ON market.user_addresses
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
