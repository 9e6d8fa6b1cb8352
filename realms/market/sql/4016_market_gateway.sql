-- Realm market: what the gateway and the REST routes add to the seed's chat and order tables
-- (not in seed 004; docs/realm-market.md):
--   * chats.product_id / chats.order_id: what a direct chat is about (optional);
--   * chats.assigned_to: the staff member answering a support chat (visible to its user);
--   * chat_participants.last_read_seq: the read position as a seq, so unread counts are exact
--     (last_read_at stays the seed's timestamp of the same read);
--   * market.append_chat_messages(): the group commit of chat sends, one round trip a batch,
--     a refused row failing alone;
--   * NOTIFYs that reach every gateway at commit: order status changes (to the order's
--     channel and to its buyer's, seller's and courier's streams), a courier reassignment
--     and a removed chat member (their joins are re-checked), a blocked or deleted user
--     (their sockets close).

ALTER TABLE market.chats
    ADD COLUMN product_id bigint,
    ADD COLUMN order_id bigint,
    ADD COLUMN assigned_to bigint,
    ADD CONSTRAINT chats_product_id_fkey FOREIGN KEY (product_id)
        REFERENCES market.products (id) ON DELETE SET NULL,
    ADD CONSTRAINT chats_order_id_fkey FOREIGN KEY (order_id)
        REFERENCES market.orders (id) ON DELETE SET NULL,
    ADD CONSTRAINT chats_assigned_to_fkey FOREIGN KEY (assigned_to)
        REFERENCES market.users (id) ON DELETE SET NULL;

CREATE INDEX idx_chats_product_id ON market.chats (product_id) WHERE product_id IS NOT NULL;
CREATE INDEX idx_chats_order_id ON market.chats (order_id) WHERE order_id IS NOT NULL;
CREATE INDEX idx_chats_assigned_to ON market.chats (assigned_to) WHERE assigned_to IS NOT NULL;

ALTER TABLE market.chat_participants
    ADD COLUMN last_read_seq bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT chat_participants_last_read_seq_non_negative CHECK (last_read_seq >= 0);

-- ---------------------------------------------------------------------------------------------
-- Chat sends, a batch at a time
-- ---------------------------------------------------------------------------------------------

-- One row per input, in input order: r_status is
--   ok          stored (r_id, r_seq, r_created_at);
--   duplicate   the sender's client_id is stored already (the stored row's id, seq, time);
--   not_member  the sender is not a participant, or is not an active, live user;
--   refused     the database refused the row (r_detail: the constraint), nothing stored.
-- Each row runs in its own subtransaction, so a refused row never fails its neighbours. The
-- sender's read position follows their own message when nothing unread precedes it.
CREATE FUNCTION market.append_chat_messages(
    p_chat_ids bigint[],
    p_senders bigint[],
    p_types market.message_type_enum[],
    p_contents text[],
    p_media_urls text[],
    p_metadata jsonb[],
    p_client_ids text[],
    p_reply_to bigint[]
) RETURNS TABLE (r_ord integer, r_status text, r_id bigint, r_seq bigint,
                 r_created_at timestamptz, r_detail text)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    v_constraint text;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_chat_ids, 1), 0) LOOP
        r_ord := i;
        r_status := NULL; r_id := NULL; r_seq := NULL; r_created_at := NULL; r_detail := NULL;
        IF NOT EXISTS (
            SELECT 1 FROM market.chat_participants p
              JOIN market.users u ON u.id = p.user_id
             WHERE p.chat_id = p_chat_ids[i] AND p.user_id = p_senders[i]
               AND u.status = 'active' AND u.deleted_at IS NULL
        ) THEN
            r_status := 'not_member';
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF p_client_ids[i] IS NOT NULL THEN
            SELECT m.id, m.seq, m.created_at INTO r_id, r_seq, r_created_at
              FROM market.messages m
             WHERE m.chat_id = p_chat_ids[i] AND m.sender_id = p_senders[i]
               AND m.client_id = p_client_ids[i];
            IF FOUND THEN
                r_status := 'duplicate';
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        BEGIN
            INSERT INTO market.messages
                (chat_id, sender_id, type, content, media_url, metadata, client_id, reply_to_id,
                 seq)
            VALUES (p_chat_ids[i], p_senders[i], p_types[i], p_contents[i], p_media_urls[i],
                    p_metadata[i], p_client_ids[i], p_reply_to[i], 0)
            RETURNING id, seq, created_at INTO r_id, r_seq, r_created_at;
            UPDATE market.chat_participants p
               SET last_read_seq = r_seq, last_read_at = now()
             WHERE p.chat_id = p_chat_ids[i] AND p.user_id = p_senders[i]
               AND NOT EXISTS (SELECT 1 FROM market.messages m
                                WHERE m.chat_id = p.chat_id AND m.seq > p.last_read_seq
                                  AND m.seq < r_seq AND m.sender_id <> p.user_id);
            r_status := 'ok';
        EXCEPTION WHEN integrity_constraint_violation OR data_exception THEN
            GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
            r_status := 'refused';
            r_detail := coalesce(nullif(v_constraint, ''), SQLERRM);
            r_id := NULL; r_seq := NULL; r_created_at := NULL;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- What every gateway hears at commit
-- ---------------------------------------------------------------------------------------------

-- An order's status change, published (sb_server, op publish, event name order_status) to
-- the order's channel market.order:<id> and to the streams of its buyer, seller and courier.
CREATE FUNCTION market.notify_order_status() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_data jsonb := jsonb_build_object(
        'order_id', NEW.id,
        'order_number', NEW.order_number,
        'status', NEW.status,
        'previous', OLD.status,
        'changed_by', nullif(current_setting('market.actor_id', true), '')::bigint,
        'notes', nullif(current_setting('market.status_notes', true), ''),
        'at', now());
    v_channel text;
BEGIN
    FOREACH v_channel IN ARRAY ARRAY[
        'market.order:' || NEW.id,
        'market.user:' || NEW.buyer_id,
        'market.user:' || NEW.seller_id]
        || CASE WHEN NEW.courier_id IS NULL THEN '{}'::text[]
                ELSE ARRAY['market.user:' || NEW.courier_id] END
    LOOP
        PERFORM pg_notify('sb_server', jsonb_build_object(
            'op', 'publish', 'channel', v_channel, 'name', 'order_status',
            'data', v_data)::text);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_orders_notify_status
    AFTER UPDATE OF status ON market.orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION market.notify_order_status();

-- A courier reassigned (or removed): joins of market.order:<id> are re-checked, so the
-- former courier's sockets leave it.
CREATE FUNCTION market.notify_order_courier() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_membership', json_build_object(
        'kind', 'market_order', 'realm', 'market', 'order_id', NEW.id::text)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_orders_notify_courier
    AFTER UPDATE OF courier_id ON market.orders
    FOR EACH ROW WHEN (OLD.courier_id IS DISTINCT FROM NEW.courier_id)
    EXECUTE FUNCTION market.notify_order_courier();

-- A participant removed from a chat: that user's joins of market.chat:<id> are re-checked.
CREATE FUNCTION market.notify_chat_participant_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_membership', json_build_object(
        'kind', 'market_chat', 'realm', 'market', 'user_id', OLD.user_id::text,
        'chat_id', OLD.chat_id::text)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_chat_participants_notify_removed
    AFTER DELETE ON market.chat_participants
    FOR EACH ROW EXECUTE FUNCTION market.notify_chat_participant_removed();

-- A user blocked (any status but active) or soft-deleted: every socket of theirs closes
-- (4004) on every gateway; the token check refuses them from then on.
CREATE FUNCTION market.notify_user_disabled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_membership', json_build_object(
        'kind', 'account', 'realm', 'market', 'user_id', NEW.id::text,
        'reason', CASE WHEN NEW.deleted_at IS NOT NULL THEN 'account deleted'
                       ELSE 'account ' || NEW.status END)::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_users_notify_disabled
    AFTER UPDATE OF status, deleted_at ON market.users
    FOR EACH ROW
    WHEN ((NEW.status <> 'active' AND OLD.status = 'active')
          OR (NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL))
    EXECUTE FUNCTION market.notify_user_disabled();
