-- Creator realm, part 3 of 10: one-to-one fan <-> creator messaging. Owns creator.conversations
-- and creator.messages, the triggers that give every message its gap-free per-conversation
-- seq and keep last_seq, last_message_at and both parties' unread counters exact, and the
-- functions mark_conversation_read() and may_start_conversation().
-- Relies on 3001 (users, user_profiles), 3002 (subscriptions, follows, require_creator_account).
--
-- Concurrency: every INSERT of a message first locks its conversation row (FOR UPDATE) and
-- holds it to commit, and a read (an UPDATE of <party>_last_read_seq) locks the same row, so
-- sends and reads of one conversation run one after the other and each sees what the one
-- before it committed. That is what keeps the counters exact under concurrent sends and reads.

-- ---------------------------------------------------------------------------------------------
-- conversations: one per (creator, fan) pair
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.conversations (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id             uuid NOT NULL,
    fan_id                 uuid NOT NULL,
    last_seq               bigint NOT NULL DEFAULT 0,
    last_message_at        timestamptz,
    creator_unread_count   integer NOT NULL DEFAULT 0,
    fan_unread_count       integer NOT NULL DEFAULT 0,
    creator_last_read_seq  bigint NOT NULL DEFAULT 0,
    fan_last_read_seq      bigint NOT NULL DEFAULT 0,
    creator_last_read_at   timestamptz,
    fan_last_read_at       timestamptz,
    creator_archived       boolean NOT NULL DEFAULT false,
    fan_archived           boolean NOT NULL DEFAULT false,
    blocked_by             uuid,
    blocked_at             timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT conversations_creator_id_fkey FOREIGN KEY (creator_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT conversations_fan_id_fkey FOREIGN KEY (fan_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT conversations_blocked_by_fkey FOREIGN KEY (blocked_by)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT conversations_creator_id_fan_id_key UNIQUE (creator_id, fan_id),
    CONSTRAINT conversations_not_self CHECK (creator_id <> fan_id),
    CONSTRAINT conversations_last_seq_non_negative CHECK (last_seq >= 0),
    CONSTRAINT conversations_unread_counts_non_negative
        CHECK (creator_unread_count >= 0 AND fan_unread_count >= 0),
    CONSTRAINT conversations_read_seq_within_last_seq
        CHECK (creator_last_read_seq BETWEEN 0 AND last_seq
               AND fan_last_read_seq BETWEEN 0 AND last_seq),
    CONSTRAINT conversations_blocked_by_party
        CHECK (blocked_by IS NULL OR blocked_by IN (creator_id, fan_id)),
    CONSTRAINT conversations_blocked_at_matches_blocked_by
        CHECK ((blocked_by IS NULL) = (blocked_at IS NULL))
);

-- Inboxes, most recent first. creator_id's FK index is the unique (creator_id, fan_id).
CREATE INDEX idx_conversations_creator_inbox ON creator.conversations
    (creator_id, last_message_at DESC);
CREATE INDEX idx_conversations_fan_id ON creator.conversations (fan_id, last_message_at DESC);
CREATE INDEX idx_conversations_blocked_by ON creator.conversations (blocked_by)
    WHERE blocked_by IS NOT NULL;

CREATE TRIGGER trg_conversations_updated_at
    BEFORE UPDATE ON creator.conversations
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();
CREATE TRIGGER trg_conversations_creator_account
    BEFORE INSERT OR UPDATE OF creator_id ON creator.conversations
    FOR EACH ROW EXECUTE FUNCTION creator.require_creator_account('creator_id',
                                                                   'conversations_creator_is_creator');

-- ---------------------------------------------------------------------------------------------
-- messages: a conversation's messages; premium ones carry a price and stay locked for the fan
-- until a message_purchase transaction completes (message_unlocked_for(), 3005)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.messages (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id  uuid NOT NULL,
    sender_id        uuid NOT NULL,
    seq              bigint NOT NULL,
    client_id        varchar(64),
    message_type     varchar(20) NOT NULL DEFAULT 'text',
    body             text,
    attachments      jsonb NOT NULL DEFAULT '[]',
    preview          jsonb,
    price            bigint,
    reply_to_id      uuid,
    edited_at        timestamptz,
    is_deleted       boolean NOT NULL DEFAULT false,
    deleted_at       timestamptz,
    deleted_by       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT messages_conversation_id_fkey FOREIGN KEY (conversation_id)
        REFERENCES creator.conversations (id) ON DELETE CASCADE,
    -- The sender is a party: their messages go with them, as the conversation does.
    CONSTRAINT messages_sender_id_fkey FOREIGN KEY (sender_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT messages_deleted_by_fkey FOREIGN KEY (deleted_by)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT messages_id_conversation_id_key UNIQUE (id, conversation_id),
    -- A reply is to a message of the same conversation; it loses the link (only) when that
    -- message is hard-deleted.
    CONSTRAINT messages_reply_to_id_fkey FOREIGN KEY (reply_to_id, conversation_id)
        REFERENCES creator.messages (id, conversation_id) ON DELETE SET NULL (reply_to_id),
    -- Gap-free per conversation, assigned by trg_messages_prepare; history is read by it.
    CONSTRAINT messages_conversation_id_seq_key UNIQUE (conversation_id, seq),
    CONSTRAINT messages_seq_positive CHECK (seq > 0),
    CONSTRAINT messages_client_id_not_blank CHECK (client_id <> ''),
    CONSTRAINT messages_message_type_valid
        CHECK (message_type IN ('text', 'image', 'video', 'audio', 'system')),
    CONSTRAINT messages_body_length CHECK (char_length(body) BETWEEN 1 AND 5000),
    -- attachments: [{"type", "url", "mime_type", "size_bytes", "width", "height",
    -- "duration_seconds", ...}]; preview: what a locked message shows (blur hash, thumbnail,
    -- counts), never the content itself.
    CONSTRAINT messages_attachments_array CHECK (jsonb_typeof(attachments) = 'array'),
    CONSTRAINT messages_preview_object CHECK (jsonb_typeof(preview) = 'object'),
    CONSTRAINT messages_price_positive CHECK (price > 0),
    CONSTRAINT messages_system_not_priced CHECK (message_type <> 'system' OR price IS NULL),
    CONSTRAINT messages_has_content
        CHECK (is_deleted OR body IS NOT NULL OR attachments <> '[]'::jsonb),
    CONSTRAINT messages_media_has_attachment
        CHECK (is_deleted OR message_type NOT IN ('image', 'video', 'audio')
               OR attachments <> '[]'::jsonb),
    CONSTRAINT messages_deleted_at_matches_is_deleted
        CHECK (is_deleted = (deleted_at IS NOT NULL)),
    CONSTRAINT messages_not_own_reply CHECK (reply_to_id <> id)
);

COMMENT ON COLUMN creator.messages.price IS
    'Premium message price in minor units (cents); NULL for an ordinary message';

-- Idempotent sends: a retried send with the same client_id is one message.
CREATE UNIQUE INDEX messages_client_id_key ON creator.messages (conversation_id, sender_id, client_id)
    WHERE client_id IS NOT NULL;
CREATE INDEX idx_messages_sender_id ON creator.messages (sender_id, created_at DESC);
CREATE INDEX idx_messages_reply_to_id ON creator.messages (reply_to_id)
    WHERE reply_to_id IS NOT NULL;
CREATE INDEX idx_messages_deleted_by ON creator.messages (deleted_by)
    WHERE deleted_by IS NOT NULL;
-- scrub_deleted_messages() (3009).
CREATE INDEX idx_messages_deleted_at ON creator.messages (deleted_at)
    WHERE deleted_at IS NOT NULL;

CREATE TRIGGER trg_messages_updated_at
    BEFORE UPDATE ON creator.messages
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- prepare_message(): BEFORE INSERT. Locks the conversation, checks who may send what, and
-- assigns seq = the conversation's highest seq so far + 1 (max of last_seq and the stored
-- rows, so rows earlier in the same INSERT count and a hard-deleted last message's seq is not
-- reused). Nothing is written here: a row skipped by ON CONFLICT DO NOTHING consumes no seq.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION creator.prepare_message() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_conv creator.conversations%ROWTYPE;
BEGIN
    SELECT * INTO v_conv FROM creator.conversations WHERE id = NEW.conversation_id FOR UPDATE;
    IF NOT FOUND THEN
        NEW.seq := 1;
        RETURN NEW;  -- messages_conversation_id_fkey rejects it
    END IF;
    IF NEW.sender_id IS DISTINCT FROM v_conv.creator_id
       AND NEW.sender_id IS DISTINCT FROM v_conv.fan_id THEN
        RAISE EXCEPTION 'the sender is not a party of conversation %', NEW.conversation_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_sender_is_party',
                  TABLE = 'messages', SCHEMA = 'creator';
    END IF;
    IF v_conv.blocked_by IS NOT NULL THEN
        RAISE EXCEPTION 'conversation % is blocked', NEW.conversation_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_conversation_not_blocked',
                  TABLE = 'messages', SCHEMA = 'creator';
    END IF;
    IF NEW.price IS NOT NULL AND NEW.sender_id <> v_conv.creator_id THEN
        RAISE EXCEPTION 'only the creator of conversation % may send a priced message',
                NEW.conversation_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_price_only_from_creator',
                  TABLE = 'messages', SCHEMA = 'creator';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM creator.users
                    WHERE id = NEW.sender_id AND account_status = 'active'
                      AND deleted_at IS NULL) THEN
        RAISE EXCEPTION 'sender % is not an active account', NEW.sender_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_sender_active',
                  TABLE = 'messages', SCHEMA = 'creator';
    END IF;
    NEW.seq := greatest(v_conv.last_seq,
                        coalesce((SELECT max(m.seq) FROM creator.messages m
                                   WHERE m.conversation_id = NEW.conversation_id), 0)) + 1;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_messages_prepare
    BEFORE INSERT ON creator.messages
    FOR EACH ROW EXECUTE FUNCTION creator.prepare_message();

-- Who sent a message, where, under which seq and for what price never changes.
CREATE FUNCTION creator.keep_message_identity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.conversation_id IS DISTINCT FROM OLD.conversation_id
       OR NEW.sender_id IS DISTINCT FROM OLD.sender_id
       OR NEW.seq IS DISTINCT FROM OLD.seq
       OR NEW.client_id IS DISTINCT FROM OLD.client_id
       OR NEW.price IS DISTINCT FROM OLD.price THEN
        RAISE EXCEPTION 'conversation_id, sender_id, seq, client_id and price of a message are immutable'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_identity_immutable',
                  TABLE = 'messages', SCHEMA = 'creator';
    END IF;
    -- An edit of a live message is stamped; deleting or scrubbing one is not an edit.
    IF NOT NEW.is_deleted AND (NEW.body IS DISTINCT FROM OLD.body
                               OR NEW.attachments IS DISTINCT FROM OLD.attachments) THEN
        NEW.edited_at := now();
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_messages_keep_identity
    BEFORE UPDATE ON creator.messages
    FOR EACH ROW EXECUTE FUNCTION creator.keep_message_identity();

-- ---------------------------------------------------------------------------------------------
-- Conversation stats. For a party P of a conversation:
--   <P>_unread_count = number of messages with sender <> P, NOT is_deleted and
--                      seq > <P>_last_read_seq
--   last_seq         = highest seq ever given in it; last_message_at = latest created_at of a
--                      message inserted live (never moved back)
-- Inserts add deltas (one UPDATE per conversation per statement); deletes, undeletes and hard
-- deletes recount the affected conversations; a read recounts its party (BEFORE UPDATE on
-- conversations, below).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION creator.recount_unread(p_conversation_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM creator.conversations
     WHERE id = ANY (p_conversation_ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE creator.conversations c
       SET fan_unread_count = (SELECT count(*) FROM creator.messages m
                                WHERE m.conversation_id = c.id AND m.sender_id <> c.fan_id
                                  AND m.seq > c.fan_last_read_seq AND NOT m.is_deleted),
           creator_unread_count = (SELECT count(*) FROM creator.messages m
                                    WHERE m.conversation_id = c.id AND m.sender_id <> c.creator_id
                                      AND m.seq > c.creator_last_read_seq AND NOT m.is_deleted)
     WHERE c.id = ANY (p_conversation_ids);
END;
$$;

CREATE FUNCTION creator.conversation_stats_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The conversations are already locked by trg_messages_prepare.
    UPDATE creator.conversations c
       SET last_seq = greatest(c.last_seq, d.max_seq),
           last_message_at = greatest(c.last_message_at, d.latest),
           fan_unread_count = c.fan_unread_count + d.to_fan,
           creator_unread_count = c.creator_unread_count + d.to_creator
      FROM (SELECT n.conversation_id,
                   max(n.seq) AS max_seq,
                   max(n.created_at) FILTER (WHERE NOT n.is_deleted) AS latest,
                   count(*) FILTER (WHERE NOT n.is_deleted AND n.sender_id <> cv.fan_id
                                      AND n.seq > cv.fan_last_read_seq) AS to_fan,
                   count(*) FILTER (WHERE NOT n.is_deleted AND n.sender_id <> cv.creator_id
                                      AND n.seq > cv.creator_last_read_seq) AS to_creator
              FROM new_rows n JOIN creator.conversations cv ON cv.id = n.conversation_id
             GROUP BY n.conversation_id) d
     WHERE c.id = d.conversation_id;
    RETURN NULL;
END;
$$;

CREATE FUNCTION creator.conversation_stats_after_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids uuid[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT conversation_id) INTO v_ids FROM old_rows WHERE NOT is_deleted;
    ELSE
        SELECT array_agg(DISTINCT n.conversation_id) INTO v_ids
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         WHERE n.is_deleted IS DISTINCT FROM o.is_deleted;
    END IF;
    IF v_ids IS NOT NULL THEN
        PERFORM creator.recount_unread(v_ids);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_messages_conversation_stats_insert
    AFTER INSERT ON creator.messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creator.conversation_stats_after_insert();
CREATE TRIGGER trg_messages_conversation_stats_update
    AFTER UPDATE ON creator.messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creator.conversation_stats_after_change();
CREATE TRIGGER trg_messages_conversation_stats_delete
    AFTER DELETE ON creator.messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creator.conversation_stats_after_change();

-- A read moves a party's read position forward only (an older position is ignored, so
-- reads arriving out of order are harmless), never past last_seq, stamps the read time and
-- recounts that party's unread messages.
CREATE FUNCTION creator.apply_conversation_read() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.fan_last_read_seq := greatest(OLD.fan_last_read_seq,
                                      least(NEW.fan_last_read_seq, NEW.last_seq));
    NEW.creator_last_read_seq := greatest(OLD.creator_last_read_seq,
                                          least(NEW.creator_last_read_seq, NEW.last_seq));
    IF NEW.fan_last_read_seq <> OLD.fan_last_read_seq THEN
        NEW.fan_last_read_at := now();
        NEW.fan_unread_count := (SELECT count(*) FROM creator.messages m
                                  WHERE m.conversation_id = NEW.id AND m.sender_id <> NEW.fan_id
                                    AND m.seq > NEW.fan_last_read_seq AND NOT m.is_deleted);
    END IF;
    IF NEW.creator_last_read_seq <> OLD.creator_last_read_seq THEN
        NEW.creator_last_read_at := now();
        NEW.creator_unread_count := (SELECT count(*) FROM creator.messages m
                                      WHERE m.conversation_id = NEW.id
                                        AND m.sender_id <> NEW.creator_id
                                        AND m.seq > NEW.creator_last_read_seq
                                        AND NOT m.is_deleted);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_conversations_read
    BEFORE UPDATE OF fan_last_read_seq, creator_last_read_seq ON creator.conversations
    FOR EACH ROW EXECUTE FUNCTION creator.apply_conversation_read();

-- mark_conversation_read(conversation, user, seq): the user (a party) has read up to seq
-- (NULL: everything). Returns the user's unread count afterwards; NULL when the user is not
-- a party or the conversation does not exist.
CREATE FUNCTION creator.mark_conversation_read(
    p_conversation_id uuid, p_user_id uuid, p_seq bigint DEFAULT NULL
) RETURNS integer
LANGUAGE sql AS $$
    UPDATE creator.conversations
       SET fan_last_read_seq = CASE WHEN fan_id = p_user_id
                                    THEN coalesce(p_seq, last_seq) ELSE fan_last_read_seq END,
           creator_last_read_seq = CASE WHEN creator_id = p_user_id
                                        THEN coalesce(p_seq, last_seq)
                                        ELSE creator_last_read_seq END
     WHERE id = p_conversation_id AND p_user_id IN (fan_id, creator_id)
    RETURNING CASE WHEN fan_id = p_user_id THEN fan_unread_count ELSE creator_unread_count END;
$$;

-- may_start_conversation(fan, creator): the creator's rule (user_profiles.allow_messages_from,
-- 'subscribers' when there is no profile) lets this fan open a conversation. Both must be
-- active, non-deleted accounts and the creator a creator.
CREATE FUNCTION creator.may_start_conversation(p_fan_id uuid, p_creator_id uuid)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT p_fan_id <> p_creator_id
       AND EXISTS (SELECT 1 FROM creator.users
                    WHERE id = p_fan_id AND account_status = 'active' AND deleted_at IS NULL)
       AND coalesce((
           SELECT CASE coalesce(p.allow_messages_from, 'subscribers')
                      WHEN 'everyone' THEN true
                      WHEN 'followers' THEN EXISTS (
                          SELECT 1 FROM creator.follows f
                           WHERE f.follower_id = p_fan_id AND f.following_id = p_creator_id
                             AND f.unfollowed_at IS NULL)
                          OR creator.has_active_subscription(p_fan_id, p_creator_id)
                      WHEN 'subscribers' THEN creator.has_active_subscription(p_fan_id, p_creator_id)
                      ELSE false
                  END
             FROM creator.users u
             LEFT JOIN creator.user_profiles p ON p.user_id = u.id
            WHERE u.id = p_creator_id AND u.account_type = 'creator'
              AND u.account_status = 'active' AND u.deleted_at IS NULL), false);
$$;
