-- Realm academy: what the gateway's live-session rooms (`academy.session:<id>`) keep beyond the
-- seed, which has no table for them: the room's chat (gap-free seq per session), the seq
-- counter, and the participants a host removed (they cannot join again). Relies on 1001/1003.
-- Written by the gateway as the owner; users read a room's chat through the API (as
-- academy_user: participants and the host of the session only).

CREATE TABLE academy.session_messages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id uuid NOT NULL,
    seq bigint NOT NULL,
    user_id uuid NOT NULL,
    body text NOT NULL,
    message_type varchar(20) NOT NULL DEFAULT 'text',
    client_id text,
    is_pinned boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT fk_session_messages_session_id FOREIGN KEY (session_id)
        REFERENCES academy.live_sessions (id) ON DELETE CASCADE,
    CONSTRAINT fk_session_messages_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT ck_session_messages_message_type_valid
        CHECK (message_type IN ('text', 'system')),
    CONSTRAINT session_messages_session_id_seq_key UNIQUE (session_id, seq)
);

-- A retried send (same client_id) is the same message.
CREATE UNIQUE INDEX idx_session_messages_client
    ON academy.session_messages (session_id, user_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX idx_session_messages_user ON academy.session_messages (user_id);

-- The last seq of each room: one row per session, incremented under its row lock.
CREATE TABLE academy.session_rooms (
    session_id uuid PRIMARY KEY,
    last_seq bigint NOT NULL DEFAULT 0,

    CONSTRAINT fk_session_rooms_session_id FOREIGN KEY (session_id)
        REFERENCES academy.live_sessions (id) ON DELETE CASCADE
);

CREATE TABLE academy.session_removals (
    session_id uuid NOT NULL,
    user_id uuid NOT NULL,
    removed_by uuid NOT NULL,
    reason text,
    removed_at timestamptz NOT NULL DEFAULT now(),

    PRIMARY KEY (session_id, user_id),
    CONSTRAINT fk_session_removals_session_id FOREIGN KEY (session_id)
        REFERENCES academy.live_sessions (id) ON DELETE CASCADE,
    CONSTRAINT fk_session_removals_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT fk_session_removals_removed_by FOREIGN KEY (removed_by)
        REFERENCES academy.users (id) ON DELETE CASCADE
);
CREATE INDEX idx_session_removals_user ON academy.session_removals (user_id);
CREATE INDEX idx_session_removals_removed_by ON academy.session_removals (removed_by);

ALTER TABLE academy.session_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.session_rooms ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.session_removals ENABLE ROW LEVEL SECURITY;

GRANT SELECT ON academy.session_messages TO academy_user;
CREATE POLICY "Participants and hosts can read the room" ON academy.session_messages
    FOR SELECT TO academy_user
    USING (
        EXISTS (SELECT 1 FROM academy.live_sessions s
                 WHERE s.id = session_messages.session_id AND s.host_id = academy.uid())
        OR EXISTS (SELECT 1 FROM academy.session_participants p
                    WHERE p.session_id = session_messages.session_id
                      AND p.user_id = academy.uid()
                      AND p.attendance_status IN ('registered', 'attended', 'missed'))
    );
