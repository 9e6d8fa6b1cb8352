-- The REST sidecar's sessions and abuse limits: refresh tokens (stored hashed, rotated on
-- use, revocable) and a log of login/OTP attempts per account and per client address.

CREATE TABLE gateway.refresh_tokens (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      uuid NOT NULL REFERENCES analyst.users (id) ON DELETE CASCADE,
    realm        text NOT NULL DEFAULT 'analyst',
    token_hash   text NOT NULL UNIQUE,        -- sha256 of the token; the token is never stored
    family_id    uuid NOT NULL,               -- all rotations of one login
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,                 -- rotated: presenting it again revokes the family
    revoked_at   timestamptz,
    user_agent   text,
    CONSTRAINT refresh_tokens_expiry_after_creation CHECK (expires_at > created_at)
);
CREATE INDEX idx_refresh_tokens_user_id ON gateway.refresh_tokens (user_id)
    WHERE revoked_at IS NULL;
CREATE INDEX idx_refresh_tokens_family_id ON gateway.refresh_tokens (family_id);

CREATE TABLE gateway.auth_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope       text NOT NULL CHECK (scope IN ('account', 'address')),
    subject     text NOT NULL,               -- lower-cased e-mail / phone, or client address
    action      text NOT NULL CHECK (action IN ('login', 'otp_request', 'otp_verify')),
    succeeded   boolean NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_auth_attempts_window ON gateway.auth_attempts (scope, subject, action, at);
