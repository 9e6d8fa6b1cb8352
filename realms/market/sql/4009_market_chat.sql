-- Communication (seed 004, section 6): market.chats, chat_participants, messages,
-- message_reads, with the gateway's additions on messages (documented as such below):
--   * seq bigint: gap-free per-chat sequence, assigned under the chat's row lock, so it commits
--     in order and a rolled-back insert leaves no hole; immutable afterwards;
--   * client_id varchar(64): the sender's idempotency key, UNIQUE (chat_id, sender_id,
--     client_id) when set, so a retried send finds the stored message instead of a duplicate.
-- Also kept here: chats.last_message_at, a direct chat has at most two participants and there
-- is one direct chat per pair of users, each message type's payload is checked.

-- ---------------------------------------------------------------------------------------------
-- chats
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.chats (
    id               bigserial PRIMARY KEY,
    type             market.chat_type_enum NOT NULL,
    name             varchar(255),
    created_by       bigint NOT NULL,
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT chats_created_by_fkey FOREIGN KEY (created_by) REFERENCES market.users (id),
    -- "Chat name (for groups)": a group has a name.
    CONSTRAINT chats_group_has_name
        CHECK (type <> 'group' OR coalesce(name, '') ~ '\S')
);

CREATE INDEX idx_chats_type ON market.chats (type);
CREATE INDEX idx_chats_last_message ON market.chats (last_message_at DESC);
CREATE INDEX idx_chats_created_by ON market.chats (created_by);

CREATE TRIGGER trg_chats_updated_at
    BEFORE UPDATE ON market.chats
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- chat_participants
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.chat_participants (
    id            bigserial PRIMARY KEY,
    chat_id       bigint NOT NULL,
    user_id       bigint NOT NULL,
    role          market.chat_role_enum NOT NULL DEFAULT 'member',
    joined_at     timestamptz NOT NULL DEFAULT now(),
    last_read_at  timestamptz,
    is_muted      boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT chat_participants_chat_id_fkey FOREIGN KEY (chat_id)
        REFERENCES market.chats (id) ON DELETE CASCADE,
    CONSTRAINT chat_participants_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE CASCADE
);

CREATE INDEX idx_chat_participants_chat_id ON market.chat_participants (chat_id);
CREATE INDEX idx_chat_participants_user_id ON market.chat_participants (user_id);
CREATE UNIQUE INDEX idx_chat_participants_unique ON market.chat_participants (chat_id, user_id);

CREATE TRIGGER trg_chat_participants_updated_at
    BEFORE UPDATE ON market.chat_participants
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- A direct chat is between two users: at most two participants, and no other direct chat
-- with the same two. Participants of one direct chat are serialised on the chat's row lock,
-- and every pair on a transaction-scoped advisory lock, so concurrent creations of the same
-- pair cannot both succeed.
CREATE FUNCTION market.check_direct_chat_participants() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_other bigint;
BEGIN
    PERFORM 1 FROM market.chats WHERE id = NEW.chat_id AND type = 'direct' FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    IF (SELECT count(*) FROM market.chat_participants
         WHERE chat_id = NEW.chat_id AND id IS DISTINCT FROM NEW.id) >= 2 THEN
        RAISE EXCEPTION 'direct chat % already has two participants', NEW.chat_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'chat_participants_direct_pair';
    END IF;
    SELECT p.user_id INTO v_other FROM market.chat_participants p
     WHERE p.chat_id = NEW.chat_id AND p.id IS DISTINCT FROM NEW.id;
    IF v_other IS NULL OR v_other = NEW.user_id THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended(
        format('market.direct:%s:%s', least(v_other, NEW.user_id), greatest(v_other, NEW.user_id)),
        0));
    IF EXISTS (
        SELECT 1
          FROM market.chat_participants a
          JOIN market.chat_participants b ON b.chat_id = a.chat_id
          JOIN market.chats c ON c.id = a.chat_id
         WHERE a.user_id = v_other AND b.user_id = NEW.user_id
           AND c.type = 'direct' AND c.id <> NEW.chat_id
    ) THEN
        RAISE EXCEPTION 'users % and % already have a direct chat', v_other, NEW.user_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'chats_one_direct_per_pair';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_chat_participants_direct_pair
    BEFORE INSERT OR UPDATE OF chat_id, user_id ON market.chat_participants
    FOR EACH ROW EXECUTE FUNCTION market.check_direct_chat_participants();

-- ---------------------------------------------------------------------------------------------
-- messages
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.messages (
    id           bigserial PRIMARY KEY,
    chat_id      bigint NOT NULL,
    sender_id    bigint NOT NULL,
    reply_to_id  bigint,
    type         market.message_type_enum NOT NULL DEFAULT 'text',
    content      text,
    media_url    text,
    metadata     jsonb,
    is_edited    boolean NOT NULL DEFAULT false,
    is_deleted   boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Gateway additions (not in the seed).
    seq          bigint NOT NULL,
    client_id    varchar(64),

    CONSTRAINT messages_chat_id_fkey FOREIGN KEY (chat_id)
        REFERENCES market.chats (id) ON DELETE CASCADE,
    CONSTRAINT messages_sender_id_fkey FOREIGN KEY (sender_id) REFERENCES market.users (id),
    CONSTRAINT messages_reply_to_id_fkey FOREIGN KEY (reply_to_id)
        REFERENCES market.messages (id) ON DELETE SET NULL,
    -- A reply is in the same chat as the message it answers; deleting that message clears the
    -- link only.
    CONSTRAINT messages_id_chat_id_key UNIQUE (id, chat_id),
    CONSTRAINT messages_reply_in_same_chat FOREIGN KEY (reply_to_id, chat_id)
        REFERENCES market.messages (id, chat_id) ON DELETE SET NULL (reply_to_id),
    CONSTRAINT messages_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT messages_client_id_not_blank CHECK (client_id ~ '\S'),
    -- What each type carries (a deleted message may have been blanked):
    --   text: non-blank content; image, video, audio, file: media_url;
    --   location: metadata {"lat": -90..90, "lon": -180..180} (numbers);
    --   product: metadata {"product_id": positive integer} (existence: trigger below).
    CONSTRAINT messages_type_payload CHECK (
        is_deleted OR CASE type
            WHEN 'text' THEN coalesce(content, '') ~ '\S'
            WHEN 'location' THEN coalesce(
                metadata @@ '$.lat.type() == "number" && $.lon.type() == "number"
                             && $.lat >= -90 && $.lat <= 90 && $.lon >= -180 && $.lon <= 180',
                false)
            WHEN 'product' THEN coalesce(
                metadata @@ '$.product_id.type() == "number" && $.product_id >= 1
                             && $.product_id <= 9223372036854775807
                             && $.product_id.floor() == $.product_id',
                false)
            ELSE coalesce(media_url, '') ~ '\S'
        END)
);

CREATE INDEX idx_messages_chat_id ON market.messages (chat_id);
CREATE INDEX idx_messages_sender_id ON market.messages (sender_id);
CREATE INDEX idx_messages_created ON market.messages (created_at DESC);
CREATE INDEX idx_messages_reply_to_id ON market.messages (reply_to_id)
    WHERE reply_to_id IS NOT NULL;
-- Gateway: history and resume by seq; idempotent sends.
CREATE UNIQUE INDEX idx_messages_chat_seq ON market.messages (chat_id, seq);
CREATE UNIQUE INDEX idx_messages_client_id ON market.messages (chat_id, sender_id, client_id)
    WHERE client_id IS NOT NULL;

CREATE TRIGGER trg_messages_updated_at
    BEFORE UPDATE ON market.messages
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- seq = the chat's highest seq + 1, read under the chat's row lock (held until commit), so
-- writers of one chat are serialised and seqs commit in order. Rows earlier in the same
-- statement are visible here, so a multi-row insert numbers its rows consecutively. Any seq
-- the caller gives is replaced.
CREATE FUNCTION market.assign_message_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM market.chats WHERE id = NEW.chat_id FOR NO KEY UPDATE;
    SELECT coalesce(max(m.seq), 0) + 1 INTO NEW.seq
      FROM market.messages m WHERE m.chat_id = NEW.chat_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_messages_assign_seq
    BEFORE INSERT ON market.messages
    FOR EACH ROW EXECUTE FUNCTION market.assign_message_seq();

CREATE FUNCTION market.keep_message_seq() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq IS DISTINCT FROM OLD.seq OR NEW.chat_id IS DISTINCT FROM OLD.chat_id THEN
        RAISE EXCEPTION 'messages.seq and messages.chat_id are immutable'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'messages_seq_immutable';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_messages_keep_seq
    BEFORE UPDATE OF seq, chat_id ON market.messages
    FOR EACH ROW EXECUTE FUNCTION market.keep_message_seq();

-- A product message names an existing product (the gateway delivers it with a product card).
CREATE FUNCTION market.check_message_product() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.type = 'product' AND NOT NEW.is_deleted AND NOT EXISTS (
        SELECT 1 FROM market.products p
         WHERE p.id = (NEW.metadata ->> 'product_id')::bigint
    ) THEN
        RAISE EXCEPTION 'product message names unknown product %', NEW.metadata ->> 'product_id'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'messages_product_exists';
    END IF;
    RETURN NEW;
END;
$$;

-- Runs only for product messages whose product_id has the shape the payload CHECK wants
-- (same jsonpath), so the bigint cast cannot fail; a malformed one is left to
-- messages_type_payload, which runs after the BEFORE triggers.
CREATE TRIGGER trg_messages_product_exists
    BEFORE INSERT OR UPDATE OF type, metadata, is_deleted ON market.messages
    FOR EACH ROW
    WHEN (NEW.type = 'product'
          AND coalesce(NEW.metadata @@ '$.product_id.type() == "number" && $.product_id >= 1
                                        && $.product_id <= 9223372036854775807
                                        && $.product_id.floor() == $.product_id', false))
    EXECUTE FUNCTION market.check_message_product();

-- chats.last_message_at = the newest created_at of the chat's messages, never moved back
-- (deleting the newest message leaves it). One UPDATE per chat per statement.
CREATE FUNCTION market.touch_chat_last_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE market.chats c
       SET last_message_at = n.newest
      FROM (SELECT chat_id, max(created_at) AS newest FROM new_rows GROUP BY chat_id) n
     WHERE c.id = n.chat_id
       AND (c.last_message_at IS NULL OR c.last_message_at < n.newest);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_messages_touch_chat
    AFTER INSERT ON market.messages REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION market.touch_chat_last_message();

-- ---------------------------------------------------------------------------------------------
-- message_reads: read receipts
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.message_reads (
    id          bigserial PRIMARY KEY,
    message_id  bigint NOT NULL,
    user_id     bigint NOT NULL,
    read_at     timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT message_reads_message_id_fkey FOREIGN KEY (message_id)
        REFERENCES market.messages (id) ON DELETE CASCADE,
    CONSTRAINT message_reads_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE CASCADE
);

CREATE INDEX idx_message_reads_message_id ON market.message_reads (message_id);
CREATE INDEX idx_message_reads_user_id ON market.message_reads (user_id);
CREATE UNIQUE INDEX idx_message_reads_unique ON market.message_reads (message_id, user_id);
