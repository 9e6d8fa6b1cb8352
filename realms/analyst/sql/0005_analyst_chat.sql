-- Chat (seed 000, tables 9-10 and step 5 of its migration order): owns analyst.chat_channels,
-- analyst.chat_messages, their indexes, the trigger function update_chat_channel_stats()
-- (chat_messages -> chat_channels.total_messages / last_message_at, deltas) and the function
-- check_chat_rate_limit(uuid, uuid, integer).
-- Relies on 0001 (analyst.update_updated_at_column), 0002 (analyst.users) and
-- 0003 (analyst.subscription_tiers). Columns are exactly the seed's: the gateway adds its own
-- in a later migration. Readings of the seed's vague points: docs/schema-notes.md.

-- ---------------------------------------------------------------------------------------------
-- chat_channels: chat rooms for an analyst's subscribers
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.chat_channels (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    analyst_id            uuid NOT NULL,
    channel_name          varchar(255) NOT NULL,
    channel_description   text,
    channel_type          varchar(50) NOT NULL,
    is_active             boolean NOT NULL DEFAULT true,
    is_archived           boolean NOT NULL DEFAULT false,
    max_members           integer,
    message_rate_limit    integer NOT NULL DEFAULT 10,
    is_rate_limited       boolean NOT NULL DEFAULT true,
    require_subscription  boolean NOT NULL DEFAULT true,
    minimum_tier_required uuid,
    total_messages        integer NOT NULL DEFAULT 0,
    active_members_count  integer NOT NULL DEFAULT 0,
    last_message_at       timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,

    CONSTRAINT chat_channels_analyst_id_fkey FOREIGN KEY (analyst_id)
        REFERENCES analyst.users (id),
    CONSTRAINT chat_channels_minimum_tier_required_fkey FOREIGN KEY (minimum_tier_required)
        REFERENCES analyst.subscription_tiers (id),
    -- The minimum tier must be one of this channel's analyst's tiers.
    CONSTRAINT chat_channels_tier_matches_analyst FOREIGN KEY (minimum_tier_required, analyst_id)
        REFERENCES analyst.subscription_tiers (id, analyst_id),
    CONSTRAINT chat_channels_channel_type_valid
        CHECK (channel_type IN ('community', 'premium', 'support')),
    CONSTRAINT chat_channels_max_members_positive CHECK (max_members > 0),
    CONSTRAINT chat_channels_message_rate_limit_positive CHECK (message_rate_limit > 0),
    CONSTRAINT chat_channels_total_messages_non_negative CHECK (total_messages >= 0),
    CONSTRAINT chat_channels_active_members_count_non_negative
        CHECK (active_members_count >= 0),
    -- Target of chat_messages' (channel_id, analyst_id) foreign key: keeps the denormalized
    -- chat_messages.analyst_id equal to its channel's analyst.
    CONSTRAINT chat_channels_id_analyst_id_key UNIQUE (id, analyst_id)
);

CREATE INDEX idx_chat_channels_analyst_id ON analyst.chat_channels (analyst_id);
CREATE INDEX idx_chat_channels_minimum_tier_required ON analyst.chat_channels (minimum_tier_required)
    WHERE minimum_tier_required IS NOT NULL;

CREATE TRIGGER trg_chat_channels_updated_at
    BEFORE UPDATE ON analyst.chat_channels
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- ---------------------------------------------------------------------------------------------
-- chat_messages: messages within channels
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.chat_messages (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id          uuid NOT NULL,
    user_id             uuid,
    analyst_id          uuid NOT NULL,
    message             text NOT NULL,
    message_type        varchar(50) NOT NULL DEFAULT 'text',
    attachment_url      varchar(500),
    reply_to_message_id uuid,
    is_deleted          boolean NOT NULL DEFAULT false,
    deleted_by          uuid,
    deleted_at          timestamptz,
    deletion_reason     text,
    is_flagged          boolean NOT NULL DEFAULT false,
    flagged_by          uuid,
    flagged_reason      text,
    is_pinned           boolean NOT NULL DEFAULT false,
    pinned_by           uuid,
    pinned_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT chat_messages_channel_id_fkey FOREIGN KEY (channel_id)
        REFERENCES analyst.chat_channels (id) ON DELETE CASCADE,
    CONSTRAINT chat_messages_analyst_matches_channel FOREIGN KEY (channel_id, analyst_id)
        REFERENCES analyst.chat_channels (id, analyst_id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT chat_messages_user_id_fkey FOREIGN KEY (user_id) REFERENCES analyst.users (id),
    CONSTRAINT chat_messages_analyst_id_fkey FOREIGN KEY (analyst_id) REFERENCES analyst.users (id),
    CONSTRAINT chat_messages_reply_to_message_id_fkey FOREIGN KEY (reply_to_message_id)
        REFERENCES analyst.chat_messages (id) ON DELETE SET NULL,
    CONSTRAINT chat_messages_deleted_by_fkey FOREIGN KEY (deleted_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    CONSTRAINT chat_messages_flagged_by_fkey FOREIGN KEY (flagged_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    CONSTRAINT chat_messages_pinned_by_fkey FOREIGN KEY (pinned_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    CONSTRAINT chat_messages_message_length CHECK (char_length(message) BETWEEN 1 AND 2000),
    CONSTRAINT chat_messages_message_type_valid
        CHECK (message_type IN ('text', 'image', 'file', 'system')),
    -- Only system messages may be authorless.
    CONSTRAINT chat_messages_author_required
        CHECK (user_id IS NOT NULL OR message_type = 'system')
);

-- Chat message loading (a channel's history, newest first); also the FK index for channel_id
-- and the leading part of (channel_id, analyst_id).
CREATE INDEX idx_chat_messages_channel_id ON analyst.chat_messages (channel_id, created_at DESC);
-- check_chat_rate_limit(): one user's recent messages in one channel; also user_id's FK index.
CREATE INDEX idx_chat_messages_user_id ON analyst.chat_messages (user_id, channel_id, created_at);
CREATE INDEX idx_chat_messages_analyst_id ON analyst.chat_messages (analyst_id);
-- Mostly-NULL actor/reply columns: partial FK indexes (x = $1 implies x IS NOT NULL, so the
-- planner can use them for the FK checks and ON DELETE SET NULL actions).
CREATE INDEX idx_chat_messages_reply_to_message_id ON analyst.chat_messages (reply_to_message_id)
    WHERE reply_to_message_id IS NOT NULL;
CREATE INDEX idx_chat_messages_deleted_by ON analyst.chat_messages (deleted_by)
    WHERE deleted_by IS NOT NULL;
CREATE INDEX idx_chat_messages_flagged_by ON analyst.chat_messages (flagged_by)
    WHERE flagged_by IS NOT NULL;
CREATE INDEX idx_chat_messages_pinned_by ON analyst.chat_messages (pinned_by)
    WHERE pinned_by IS NOT NULL;
-- A channel's pinned messages.
CREATE INDEX idx_chat_messages_pinned ON analyst.chat_messages (channel_id, pinned_at DESC)
    WHERE is_pinned AND NOT is_deleted;

CREATE TRIGGER trg_chat_messages_updated_at
    BEFORE UPDATE ON analyst.chat_messages
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- ---------------------------------------------------------------------------------------------
-- update_chat_channel_stats(): per channel,
--   total_messages  = number of its messages with is_deleted = false ("live")
--   last_message_at = greatest(last_message_at, created_at) of each message that becomes live
--                     in it (insert, undelete, move in). Never moved back: deleting a message
--                     leaves it, it is the time of the last message sent.
-- Deltas: +1 per live new row, -1 per live old row, never below 0. Statement-level with
-- transition tables, like the triggers of 0004 (see there why): a batch of messages costs one
-- channel update, and the channel rows are locked in id order first.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION analyst.update_chat_channel_stats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids    uuid[];
    v_delta  bigint[];
    v_latest timestamptz[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(channel_id ORDER BY channel_id), array_agg(n ORDER BY channel_id),
               array_agg(latest ORDER BY channel_id)
          INTO v_ids, v_delta, v_latest
          FROM (SELECT channel_id, count(*) AS n, max(created_at) AS latest
                  FROM new_rows WHERE NOT is_deleted GROUP BY channel_id) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(channel_id ORDER BY channel_id), array_agg(n ORDER BY channel_id),
               array_agg(NULL::timestamptz)
          INTO v_ids, v_delta, v_latest
          FROM (SELECT channel_id, -count(*) AS n
                  FROM old_rows WHERE NOT is_deleted GROUP BY channel_id) d;
    ELSE  -- UPDATE: compare the live rows before and after; unrelated edits cancel out.
        WITH was_live AS (SELECT id, channel_id, created_at FROM old_rows WHERE NOT is_deleted),
             is_live  AS (SELECT id, channel_id, created_at FROM new_rows WHERE NOT is_deleted),
             changes  AS (SELECT channel_id, -1 AS d, NULL::timestamptz AS latest
                            FROM (SELECT * FROM was_live EXCEPT ALL SELECT * FROM is_live) l
                          UNION ALL
                          SELECT channel_id, 1, created_at
                            FROM (SELECT * FROM is_live EXCEPT ALL SELECT * FROM was_live) j)
        SELECT array_agg(channel_id ORDER BY channel_id), array_agg(n ORDER BY channel_id),
               array_agg(latest ORDER BY channel_id)
          INTO v_ids, v_delta, v_latest
          FROM (SELECT channel_id, sum(d) AS n, max(latest) AS latest
                  FROM changes GROUP BY channel_id) d
         WHERE n <> 0 OR latest IS NOT NULL;
    END IF;

    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM analyst.chat_channels
     WHERE id = ANY (v_ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE analyst.chat_channels c
       SET total_messages  = greatest(c.total_messages + d.n, 0),
           last_message_at = greatest(c.last_message_at, d.latest)
      FROM unnest(v_ids, v_delta, v_latest) AS d(channel_id, n, latest)
     WHERE c.id = d.channel_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_chat_messages_channel_stats_insert
    AFTER INSERT ON analyst.chat_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_chat_channel_stats();
CREATE TRIGGER trg_chat_messages_channel_stats_update
    AFTER UPDATE ON analyst.chat_messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_chat_channel_stats();
CREATE TRIGGER trg_chat_messages_channel_stats_delete
    AFTER DELETE ON analyst.chat_messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_chat_channel_stats();

-- ---------------------------------------------------------------------------------------------
-- check_chat_rate_limit(user, channel, limit): true when the user may send one more message to
-- the channel, i.e. fewer than p_rate_limit of their messages there have
-- created_at > now() - 1 minute. Every row counts, soft-deleted ones too: sending is what is
-- limited. A NULL limit means unlimited (true); a limit <= 0 allows nothing (false).
-- Advisory only: callers run it before inserting; it takes no lock (see the notes).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION analyst.check_chat_rate_limit(
    p_user_id uuid, p_channel_id uuid, p_rate_limit integer
) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE
               WHEN p_rate_limit IS NULL THEN true
               WHEN p_rate_limit <= 0 THEN false
               ELSE (SELECT count(*) < p_rate_limit
                       FROM (SELECT 1
                               FROM analyst.chat_messages m
                              WHERE m.user_id = p_user_id
                                AND m.channel_id = p_channel_id
                                AND m.created_at > now() - interval '1 minute'
                              LIMIT p_rate_limit) recent)
           END;
$$;
