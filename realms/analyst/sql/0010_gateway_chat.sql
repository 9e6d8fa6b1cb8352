-- The gateway's additions for realtime chat: a gap-free per-channel sequence and an
-- idempotency key on analyst.chat_messages, live membership (presence) per gateway node,
-- read positions, a one-round-trip batch append, and NOTIFY on membership-relevant changes.

-- Gap-free sequence: seq is assigned under the channel's row lock, so it commits in order
-- and a rolled-back insert leaves no hole. client_id makes a retried send idempotent.
ALTER TABLE analyst.chat_messages
    ADD COLUMN seq bigint,
    ADD COLUMN client_id varchar(64),
    ADD COLUMN edited_at timestamptz;

CREATE UNIQUE INDEX idx_chat_messages_channel_seq ON analyst.chat_messages (channel_id, seq);
CREATE UNIQUE INDEX idx_chat_messages_client_id
    ON analyst.chat_messages (channel_id, user_id, client_id) WHERE client_id IS NOT NULL;

CREATE OR REPLACE FUNCTION gateway.assign_chat_message_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Serialises writers of one channel until commit; rows earlier in the same statement
    -- are visible here, so a multi-row insert numbers its rows consecutively.
    PERFORM 1 FROM analyst.chat_channels WHERE id = NEW.channel_id FOR UPDATE;
    SELECT coalesce(max(seq), 0) + 1 INTO NEW.seq
      FROM analyst.chat_messages WHERE channel_id = NEW.channel_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_chat_messages_assign_seq
    BEFORE INSERT ON analyst.chat_messages
    FOR EACH ROW EXECUTE FUNCTION gateway.assign_chat_message_seq();

CREATE OR REPLACE FUNCTION gateway.keep_chat_message_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq IS DISTINCT FROM OLD.seq OR NEW.channel_id IS DISTINCT FROM OLD.channel_id THEN
        RAISE EXCEPTION 'chat_messages.seq and channel_id are immutable'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_chat_messages_keep_seq
    BEFORE UPDATE OF seq, channel_id ON analyst.chat_messages
    FOR EACH ROW EXECUTE FUNCTION gateway.keep_chat_message_seq();

-- Append a batch of messages in one round trip (group commit). Input arrays are parallel;
-- one row is returned per input, in input order, with status:
--   ok | duplicate (client_id already stored or earlier in the batch: the original is
--   returned when stored) | bad_reply (reply_to not in the channel) | closed (channel gone)
CREATE OR REPLACE FUNCTION gateway.append_chat_messages(
    p_channels uuid[], p_users uuid[], p_texts text[], p_types text[],
    p_reply_to uuid[], p_client_ids text[], p_attachments text[]
) RETURNS TABLE (idx integer, status text, id uuid, seq bigint, created_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    -- Lock every channel of the batch in one order, so concurrent batches cannot deadlock;
    -- the next statement's snapshot then sees every earlier writer of these channels.
    PERFORM 1 FROM analyst.chat_channels c
      WHERE c.id = ANY (p_channels) ORDER BY c.id FOR UPDATE;

    RETURN QUERY
    WITH input AS MATERIALIZED (
        SELECT t.ord::integer AS idx, t.channel_id, t.user_id, t.message, t.message_type,
               t.reply_to, t.client_id, t.attachment_url, ch.analyst_id,
               gen_random_uuid() AS new_id,
               row_number() OVER (PARTITION BY t.channel_id, t.user_id, t.client_id
                                  ORDER BY t.ord) AS nth,
               CASE
                 WHEN ch.id IS NULL OR NOT ch.is_active OR ch.is_archived
                      OR ch.deleted_at IS NOT NULL THEN 'closed'
                 WHEN t.reply_to IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM analyst.chat_messages r
                         WHERE r.id = t.reply_to AND r.channel_id = t.channel_id)
                   THEN 'bad_reply'
                 ELSE 'ok'
               END AS verdict
          FROM unnest(p_channels, p_users, p_texts, p_types, p_reply_to, p_client_ids,
                      p_attachments)
               WITH ORDINALITY AS t(channel_id, user_id, message, message_type, reply_to,
                                    client_id, attachment_url, ord)
          LEFT JOIN analyst.chat_channels ch ON ch.id = t.channel_id
    ),
    judged AS MATERIALIZED (
        SELECT i.*, d.id AS dup_id, d.seq AS dup_seq, d.created_at AS dup_created_at,
               CASE
                 WHEN i.verdict <> 'ok' THEN i.verdict
                 WHEN d.id IS NOT NULL OR (i.client_id IS NOT NULL AND i.nth > 1)
                   THEN 'duplicate'
                 ELSE 'ok'
               END AS final
          FROM input i
          LEFT JOIN analyst.chat_messages d
            ON i.client_id IS NOT NULL AND d.channel_id = i.channel_id
           AND d.user_id = i.user_id AND d.client_id = i.client_id
    ),
    inserted AS (
        INSERT INTO analyst.chat_messages AS m
               (id, channel_id, user_id, analyst_id, message, message_type,
                reply_to_message_id, client_id, attachment_url)
        SELECT j.new_id, j.channel_id, j.user_id, j.analyst_id, j.message, j.message_type,
               j.reply_to, j.client_id, j.attachment_url
          FROM judged j WHERE j.final = 'ok' ORDER BY j.idx
        RETURNING m.id, m.seq, m.created_at
    )
    SELECT j.idx, j.final,
           coalesce(ins.id, j.dup_id), coalesce(ins.seq, j.dup_seq),
           coalesce(ins.created_at, j.dup_created_at)
      FROM judged j LEFT JOIN inserted ins ON ins.id = j.new_id
     ORDER BY j.idx;
END;
$$;

-- Live membership: one row per (channel, user, node) while that node holds a joined socket.
-- active_members_count and presence are derived from it; a node that stops heartbeating is
-- swept, so presence expires on its own when a process dies.
CREATE TABLE gateway.nodes (
    node_id       text PRIMARY KEY,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateway.live_members (
    channel    text NOT NULL,
    user_id    uuid NOT NULL,
    node_id    text NOT NULL REFERENCES gateway.nodes (node_id) ON DELETE CASCADE,
    -- false for members who do not take a place under max_members (the analyst, admins)
    counted    boolean NOT NULL DEFAULT true,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, user_id, node_id)
);
CREATE INDEX idx_live_members_node ON gateway.live_members (node_id);

CREATE TABLE gateway.channel_reads (
    channel        text NOT NULL,
    user_id        uuid NOT NULL,
    last_read_seq  bigint NOT NULL CHECK (last_read_seq >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, user_id)
);

-- Changes that may end a membership are announced to every gateway (LISTEN sb_membership).
CREATE OR REPLACE FUNCTION gateway.notify_subscription_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status = 'active' THEN
            PERFORM pg_notify('sb_membership', json_build_object(
                'kind', 'subscription', 'user_id', OLD.user_id, 'analyst_id', OLD.analyst_id)::text);
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status = 'active' AND (NEW.status <> 'active' OR NEW.deleted_at IS NOT NULL
                                  OR NEW.tier_id IS DISTINCT FROM OLD.tier_id) THEN
        PERFORM pg_notify('sb_membership', json_build_object(
            'kind', 'subscription', 'user_id', NEW.user_id, 'analyst_id', NEW.analyst_id)::text);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_subscriptions_notify_gateway
    AFTER UPDATE OR DELETE ON analyst.subscriptions
    FOR EACH ROW EXECUTE FUNCTION gateway.notify_subscription_change();

CREATE OR REPLACE FUNCTION gateway.notify_channel_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_active IS DISTINCT FROM OLD.is_active
       OR NEW.is_archived IS DISTINCT FROM OLD.is_archived
       OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at
       OR NEW.require_subscription IS DISTINCT FROM OLD.require_subscription
       OR NEW.minimum_tier_required IS DISTINCT FROM OLD.minimum_tier_required THEN
        PERFORM pg_notify('sb_membership', json_build_object(
            'kind', 'channel', 'channel_id', NEW.id, 'analyst_id', NEW.analyst_id)::text);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_chat_channels_notify_gateway
    AFTER UPDATE ON analyst.chat_channels
    FOR EACH ROW EXECUTE FUNCTION gateway.notify_channel_change();
