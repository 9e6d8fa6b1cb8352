-- The core's conversations (docs/adr/0005-core-conversations.md): direct (exactly two people),
-- group (N members, admin/member) and support (a user and a staff queue), for any realm whose
-- seed has no tables of its own for these kinds. Keyed by (realm, user id as text), so UUID
-- and BIGINT realms alike; nothing here references a realm's tables. A realm whose seed does
-- keep conversations (creator, market) maps its own tables instead.

CREATE TABLE gateway.conversations (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    realm            text NOT NULL CHECK (realm ~ '^[a-z][a-z0-9]{1,30}$'),
    kind             text NOT NULL CHECK (kind IN ('direct', 'group', 'support')),
    title            text CHECK (length(title) BETWEEN 1 AND 200),
    created_by       text NOT NULL,
    -- direct: the two user ids in order, 'a|b', so a pair has one conversation per realm
    direct_key       text,
    -- the last seq handed out: a message takes last_seq + 1 under this row's lock, so seq is
    -- gap-free and commits in order (a rolled-back append hands nothing out)
    last_seq         bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT conversations_direct_key_only_for_direct
        CHECK ((kind = 'direct') = (direct_key IS NOT NULL)),
    CONSTRAINT conversations_realm_direct_key_key UNIQUE (realm, direct_key)
);
CREATE INDEX idx_conversations_realm_kind ON gateway.conversations (realm, kind, created_at);

CREATE TABLE gateway.conversation_members (
    conversation_id  uuid NOT NULL REFERENCES gateway.conversations (id) ON DELETE CASCADE,
    user_id          text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 64),
    -- admin/member in groups; member in direct; the asker is member and answering staff
    -- become staff in support
    role             text NOT NULL CHECK (role IN ('admin', 'member', 'staff')),
    last_read_seq    bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    muted            boolean NOT NULL DEFAULT false,
    joined_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX idx_conversation_members_user ON gateway.conversation_members (user_id);

CREATE TABLE gateway.conversation_messages (
    id               uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    conversation_id  uuid NOT NULL REFERENCES gateway.conversations (id) ON DELETE CASCADE,
    seq              bigint NOT NULL CHECK (seq > 0),
    user_id          text NOT NULL,
    type             text NOT NULL CHECK (type IN ('text', 'image', 'video', 'audio', 'file',
                                                   'location', 'product', 'system')),
    body             text NOT NULL CHECK (length(body) <= 4000),
    reply_to         uuid REFERENCES gateway.conversation_messages (id) ON DELETE SET NULL,
    -- {url, mime_type, size, width, height, duration_ms, name} as documented in protocol.md
    attachment       jsonb CHECK (attachment IS NULL OR jsonb_typeof(attachment) = 'object'),
    mentions         text[] NOT NULL DEFAULT '{}',
    client_id        varchar(64),
    created_at       timestamptz NOT NULL DEFAULT now(),
    edited_at        timestamptz,
    deleted_at       timestamptz,
    PRIMARY KEY (conversation_id, seq)
);
CREATE UNIQUE INDEX idx_conversation_messages_client_id
    ON gateway.conversation_messages (conversation_id, user_id, client_id)
    WHERE client_id IS NOT NULL;

CREATE TABLE gateway.message_reactions (
    message_id  uuid NOT NULL REFERENCES gateway.conversation_messages (id) ON DELETE CASCADE,
    user_id     text NOT NULL,
    emoji       text NOT NULL CHECK (length(emoji) BETWEEN 1 AND 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id, emoji)
);

-- Append a batch in one round trip (group commit). Parallel input arrays; one row out per
-- input, in input order, with status ok | duplicate (client_id already stored: the original
-- is returned) | not_member | bad_reply | bad_mention. The sender's read position moves to
-- its own message; p_mentions holds each message's mentioned user ids joined by commas (user
-- ids have none). Conversations are locked in id order first, so batches cannot deadlock.
CREATE OR REPLACE FUNCTION gateway.append_conversation_messages(
    p_conversations uuid[], p_users text[], p_types text[], p_bodies text[],
    p_reply_to uuid[], p_attachments jsonb[], p_mentions text[], p_client_ids text[]
) RETURNS TABLE (idx integer, status text, id uuid, seq bigint, created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    v_seq bigint;
    v_id uuid;
    v_at timestamptz;
    v_mentions text[];
BEGIN
    PERFORM 1 FROM gateway.conversations c
      WHERE c.id = ANY (p_conversations) ORDER BY c.id FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_conversations, 1), 0) LOOP
        idx := i;
        id := NULL; seq := NULL; created_at := NULL;
        IF NOT EXISTS (SELECT 1 FROM gateway.conversation_members m
                        WHERE m.conversation_id = p_conversations[i] AND m.user_id = p_users[i]) THEN
            status := 'not_member'; RETURN NEXT; CONTINUE;
        END IF;
        IF p_client_ids[i] IS NOT NULL THEN
            SELECT m.id, m.seq, m.created_at INTO v_id, v_seq, v_at
              FROM gateway.conversation_messages m
             WHERE m.conversation_id = p_conversations[i] AND m.user_id = p_users[i]
               AND m.client_id = p_client_ids[i];
            IF FOUND THEN
                status := 'duplicate'; id := v_id; seq := v_seq; created_at := v_at;
                RETURN NEXT; CONTINUE;
            END IF;
        END IF;
        IF p_reply_to[i] IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM gateway.conversation_messages r
                WHERE r.id = p_reply_to[i] AND r.conversation_id = p_conversations[i]) THEN
            status := 'bad_reply'; RETURN NEXT; CONTINUE;
        END IF;
        v_mentions := coalesce(string_to_array(nullif(p_mentions[i], ''), ','), '{}');
        IF EXISTS (SELECT 1 FROM unnest(v_mentions) u(user_id)
                    WHERE NOT EXISTS (SELECT 1 FROM gateway.conversation_members m
                                       WHERE m.conversation_id = p_conversations[i]
                                         AND m.user_id = u.user_id)) THEN
            status := 'bad_mention'; RETURN NEXT; CONTINUE;
        END IF;
        UPDATE gateway.conversations c
           SET last_seq = c.last_seq + 1, last_message_at = now()
         WHERE c.id = p_conversations[i]
        RETURNING c.last_seq INTO v_seq;
        INSERT INTO gateway.conversation_messages AS m
               (conversation_id, seq, user_id, type, body, reply_to, attachment, mentions,
                client_id)
        VALUES (p_conversations[i], v_seq, p_users[i], p_types[i], p_bodies[i], p_reply_to[i],
                p_attachments[i], v_mentions, p_client_ids[i])
        RETURNING m.id, m.created_at INTO v_id, v_at;
        UPDATE gateway.conversation_members m SET last_read_seq = v_seq
         WHERE m.conversation_id = p_conversations[i] AND m.user_id = p_users[i];
        status := 'ok'; id := v_id; seq := v_seq; created_at := v_at;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- A member removed from a conversation (or the conversation deleted) is announced to every
-- gateway, which drops that user's sockets from it at once.
CREATE OR REPLACE FUNCTION gateway.notify_conversation_member_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_membership', json_build_object(
        'kind', 'conversation', 'realm', c.realm, 'user_id', OLD.user_id,
        'conversation_id', OLD.conversation_id)::text)
       FROM gateway.conversations c WHERE c.id = OLD.conversation_id;
    RETURN OLD;
END;
$$;

CREATE TRIGGER trg_conversation_members_notify_gateway
    AFTER DELETE ON gateway.conversation_members
    FOR EACH ROW EXECUTE FUNCTION gateway.notify_conversation_member_removed();
