-- Revoked sign-in sessions (kernel/revocation.py): an access token carrying a `sid` claim of
-- a revoked (realm, session) is refused by the gateway and the api, and the sockets opened
-- with one close; the user's other sessions keep working. Realm-neutral: the session id is
-- the realm's own (text), no realm table is referenced. Rows may be dropped once no token of
-- the session can still be unexpired (revoked_at + ACCESS_TOKEN_MAX_TTL).
CREATE TABLE gateway.session_revocations (
    realm       text NOT NULL CHECK (realm ~ '^[a-z][a-z0-9]{1,30}$'),
    session_id  text NOT NULL CHECK (length(session_id) BETWEEN 1 AND 64),
    user_id     text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm, session_id)
);
