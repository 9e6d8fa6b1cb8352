-- Muting in chat (issue 21, item 6): a muted user stays in the room and reads, but every
-- send is refused (`forbidden`) until the mute ends. Not in seed 000; our reading, in
-- docs/schema-notes.md. An admin mutes anywhere (channel_id NULL: every channel) or in one
-- channel; a channel's analyst in their own channels.
CREATE TABLE analyst.chat_mutes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES analyst.users (id) ON DELETE CASCADE,
    channel_id  uuid REFERENCES analyst.chat_channels (id) ON DELETE CASCADE,
    muted_by    uuid REFERENCES analyst.users (id) ON DELETE SET NULL,
    reason      varchar(500),
    -- NULL: until lifted
    until       timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_mutes_until_after_created CHECK (until IS NULL OR until > created_at)
);
CREATE INDEX idx_chat_mutes_user ON analyst.chat_mutes (user_id, channel_id);
CREATE INDEX idx_chat_mutes_channel ON analyst.chat_mutes (channel_id)
    WHERE channel_id IS NOT NULL;
CREATE INDEX idx_chat_mutes_muted_by ON analyst.chat_mutes (muted_by)
    WHERE muted_by IS NOT NULL;

-- A mute or its lifting reaches the user's open sockets at once, on every gateway.
CREATE OR REPLACE FUNCTION gateway.notify_chat_mute() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_row analyst.chat_mutes%ROWTYPE;
BEGIN
    v_row := coalesce(NEW, OLD);
    PERFORM pg_notify('sb_membership', json_build_object(
        'kind', 'mute', 'realm', 'analyst', 'user_id', v_row.user_id,
        'channel_id', coalesce(v_row.channel_id::text, '*'))::text);
    RETURN v_row;
END;
$$;

CREATE TRIGGER trg_chat_mutes_notify_gateway
    AFTER INSERT OR UPDATE OR DELETE ON analyst.chat_mutes
    FOR EACH ROW EXECUTE FUNCTION gateway.notify_chat_mute();
