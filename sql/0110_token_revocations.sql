-- Revoked sessions (issue 18, item 8): every access token of (realm, user) issued before
-- `revoked_before` is refused by the gateway and the api, and the user's open sockets close
-- (kernel/revocation.py). Realm-neutral: user ids as text, no realm table referenced.
CREATE TABLE gateway.token_revocations (
    realm           text NOT NULL CHECK (realm ~ '^[a-z][a-z0-9]{1,30}$'),
    user_id         text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    -- whole seconds, rounded up: a token's iat is whole seconds too
    revoked_before  timestamptz NOT NULL,
    PRIMARY KEY (realm, user_id)
);
