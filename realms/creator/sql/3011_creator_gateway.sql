-- Creator realm, part 11: what the realm's gateway namespaces and REST routes need beyond the
-- seed's tables. Owns creator.append_messages() (the group commit of `creator.dm:` sends),
-- creator.live_claims (exactly-once live delivery of what REST commits), and the triggers that
-- make moderation take effect on open sockets: a deleted message disappears from every client
-- (NOTIFY sb_server), a suspended, banned, deactivated or deleted account's sockets close
-- (NOTIFY sb_membership).
-- Relies on 3001-3010.

-- ---------------------------------------------------------------------------------------------
-- conversations.state_version: +1 on every change of a conversation row, under its row lock,
-- so in commit order. Each live `unread` event carries it: a client keeps the counts of the
-- highest version it saw, whichever gateway process published which event first.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE creator.conversations ADD COLUMN state_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION creator.bump_conversation_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.state_version := OLD.state_version + 1;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_conversations_version
    BEFORE UPDATE ON creator.conversations
    FOR EACH ROW EXECUTE FUNCTION creator.bump_conversation_version();

-- ---------------------------------------------------------------------------------------------
-- append_messages(): a batch of sends in one round trip. Parallel input arrays; one row out per
-- input, in input order, with status
--   ok | duplicate (client_id already stored: the original's id, seq, created_at)
--   | not_party | blocked | inactive (sender not an active account) | restricted (an active
--   'messaging' feature restriction) | not_creator (a price from the fan) | bad_reply
-- and, for ok and duplicate, both parties' unread counts after the row and the conversation's
-- state_version. Conversations are locked
-- in id order first, so concurrent batches cannot deadlock; trg_messages_prepare assigns seq
-- and the statement triggers keep last_seq, last_message_at and the unread counts.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION creator.append_messages(
    p_conversations uuid[], p_senders uuid[], p_types text[], p_bodies text[],
    p_attachments jsonb[], p_reply_to uuid[], p_client_ids text[], p_prices bigint[],
    p_previews jsonb[]
) RETURNS TABLE (idx integer, status text, id uuid, seq bigint, created_at timestamptz,
                 fan_id uuid, creator_id uuid, fan_unread integer, creator_unread integer,
                 version bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i      integer;
    v_conv creator.conversations%ROWTYPE;
BEGIN
    PERFORM 1 FROM creator.conversations c
      WHERE c.id = ANY (p_conversations) ORDER BY c.id FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_conversations, 1), 0) LOOP
        idx := i; status := NULL; id := NULL; seq := NULL; created_at := NULL;
        fan_id := NULL; creator_id := NULL; fan_unread := NULL; creator_unread := NULL;
        version := NULL;
        SELECT * INTO v_conv FROM creator.conversations c WHERE c.id = p_conversations[i];
        IF NOT FOUND OR p_senders[i] NOT IN (v_conv.fan_id, v_conv.creator_id) THEN
            status := 'not_party'; RETURN NEXT; CONTINUE;
        END IF;
        fan_id := v_conv.fan_id; creator_id := v_conv.creator_id;
        IF p_client_ids[i] IS NOT NULL THEN
            SELECT m.id, m.seq, m.created_at INTO id, seq, created_at
              FROM creator.messages m
             WHERE m.conversation_id = p_conversations[i] AND m.sender_id = p_senders[i]
               AND m.client_id = p_client_ids[i];
            IF FOUND THEN
                status := 'duplicate';
                fan_unread := v_conv.fan_unread_count;
                creator_unread := v_conv.creator_unread_count;
                version := v_conv.state_version;
                RETURN NEXT; CONTINUE;
            END IF;
        END IF;
        IF v_conv.blocked_by IS NOT NULL THEN
            status := 'blocked'; RETURN NEXT; CONTINUE;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM creator.users u
                        WHERE u.id = p_senders[i] AND u.account_status = 'active'
                          AND u.deleted_at IS NULL) THEN
            status := 'inactive'; RETURN NEXT; CONTINUE;
        END IF;
        IF creator.has_feature_restriction(p_senders[i], 'messaging') THEN
            status := 'restricted'; RETURN NEXT; CONTINUE;
        END IF;
        IF p_prices[i] IS NOT NULL AND p_senders[i] <> v_conv.creator_id THEN
            status := 'not_creator'; RETURN NEXT; CONTINUE;
        END IF;
        IF p_reply_to[i] IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM creator.messages r
                WHERE r.id = p_reply_to[i] AND r.conversation_id = p_conversations[i]) THEN
            status := 'bad_reply'; RETURN NEXT; CONTINUE;
        END IF;
        INSERT INTO creator.messages AS m
               (conversation_id, sender_id, client_id, message_type, body, attachments,
                preview, price, reply_to_id)
        VALUES (p_conversations[i], p_senders[i], p_client_ids[i], p_types[i], p_bodies[i],
                coalesce(p_attachments[i], '[]'::jsonb), p_previews[i], p_prices[i],
                p_reply_to[i])
        RETURNING m.id, m.seq, m.created_at INTO id, seq, created_at;
        SELECT c.fan_unread_count, c.creator_unread_count, c.state_version
          INTO fan_unread, creator_unread, version
          FROM creator.conversations c WHERE c.id = p_conversations[i];
        status := 'ok';
        RETURN NEXT;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- live_claims: a live event that REST committed (a premium message sent, a purchase unlocked,
-- a tip) is announced on NOTIFY creator_live; every gateway process hears it and the first to
-- insert its key here publishes it, so each socket gets it once. Kept a day
-- (purge_live_claims()).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.live_claims (
    key         varchar(100) PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_live_claims_created_at ON creator.live_claims (created_at);

CREATE FUNCTION creator.purge_live_claims() RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM creator.live_claims
                   WHERE created_at < now() - interval '1 day' RETURNING 1)
    SELECT count(*) FROM gone;
$$;

-- ---------------------------------------------------------------------------------------------
-- A message that becomes deleted (by its author, or hidden by a moderator) disappears from
-- every open client: each gateway delivers a `deleted` event to the conversation's channel.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION creator.announce_message_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_server', json_build_object(
        'op', 'event', 'kind', 'deleted', 'channel', 'creator.dm:' || NEW.conversation_id,
        'id', NEW.id, 'by', NEW.deleted_by, 'seq', NEW.seq)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_messages_announce_deleted
    AFTER UPDATE OF is_deleted ON creator.messages
    FOR EACH ROW WHEN (NEW.is_deleted AND NOT OLD.is_deleted)
    EXECUTE FUNCTION creator.announce_message_deleted();

-- ---------------------------------------------------------------------------------------------
-- An account that stops being active (suspended, banned, deactivated, soft-deleted) loses its
-- sockets on every gateway at once (close 4004); its tokens are refused from then on by the
-- realm's user lookup.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION creator.announce_account_disabled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_membership', json_build_object(
        'kind', 'account', 'realm', 'creator', 'user_id', NEW.id,
        'reason', CASE WHEN NEW.deleted_at IS NOT NULL THEN 'account deleted'
                       ELSE 'account ' || NEW.account_status END)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_users_announce_disabled
    AFTER UPDATE OF account_status, deleted_at ON creator.users
    FOR EACH ROW
    WHEN ((NEW.account_status <> 'active' OR NEW.deleted_at IS NOT NULL)
          AND OLD.account_status = 'active' AND OLD.deleted_at IS NULL)
    EXECUTE FUNCTION creator.announce_account_disabled();
