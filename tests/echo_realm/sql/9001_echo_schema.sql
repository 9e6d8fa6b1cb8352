-- The test-only realm `echo` (tests/echo_realm): BIGINT user ids, rooms with members, and
-- messages with a gap-free per-room seq and an idempotent client_id.
CREATE SCHEMA IF NOT EXISTS echo;

CREATE TABLE echo.users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    is_staff   boolean NOT NULL DEFAULT false,
    is_active  boolean NOT NULL DEFAULT true
);

CREATE TABLE echo.rooms (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title  text NOT NULL
);

CREATE TABLE echo.room_members (
    room_id  bigint NOT NULL REFERENCES echo.rooms (id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES echo.users (id) ON DELETE CASCADE,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE echo.messages (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    room_id     bigint NOT NULL REFERENCES echo.rooms (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    user_id     bigint NOT NULL REFERENCES echo.users (id),
    body        text NOT NULL,
    client_id   varchar(64),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (room_id, seq)
);
CREATE UNIQUE INDEX echo_messages_client_id
    ON echo.messages (room_id, user_id, client_id) WHERE client_id IS NOT NULL;
