-- Realm aichat, issue 15 (streamed assistant replies, quotas): what the gateway needs beyond
-- the seed's columns. Everything here is **added** (docs/realm-aichat.md, "Schema additions").
--
-- messages.seq: the message's place in its conversation (1, 2, 3 ... without gaps), assigned
--   by the trigger below under the conversation's row lock, in the transaction that inserts
--   the message; it is what the socket's resume (`since`), history pages and the fan-out's
--   reorder buffer go by.
-- messages.client_id: the client's idempotency key of a user message (a retried send stores
--   nothing new).
-- messages.reply_to: the user message an assistant message answers.
-- messages.is_partial / finish_reason: an assistant reply that ended before the provider
--   finished it (stopped by the user, provider failure mid-stream, shutdown) is committed with
--   what was generated, marked is_partial; finish_reason says why any reply ended.
-- plans.monthly_message_quota: the monthly number of messages a plan's users may send
--   (NULL = unlimited), next to the seed's monthly_token_quota.

ALTER TABLE aichat.messages
    ADD COLUMN seq bigint,
    ADD COLUMN client_id varchar(64),
    ADD COLUMN reply_to uuid,
    ADD COLUMN is_partial boolean NOT NULL DEFAULT false,
    ADD COLUMN finish_reason varchar(30);

-- Rows written before this migration (none in a fresh database) get their order by created_at.
UPDATE aichat.messages m SET seq = numbered.n
  FROM (SELECT id, row_number() OVER (PARTITION BY conversation_id ORDER BY created_at, id) AS n
          FROM aichat.messages) numbered
 WHERE numbered.id = m.id;

ALTER TABLE aichat.messages
    ALTER COLUMN seq SET NOT NULL,
    ADD CONSTRAINT messages_seq_positive CHECK (seq > 0),
    ADD CONSTRAINT messages_conversation_id_seq_key UNIQUE (conversation_id, seq),
    ADD CONSTRAINT fk_messages_reply_to FOREIGN KEY (reply_to)
        REFERENCES aichat.messages (id) ON DELETE SET NULL,
    ADD CONSTRAINT messages_partial_is_assistant CHECK (NOT is_partial OR role = 'assistant'),
    ADD CONSTRAINT messages_finish_reason_valid
        CHECK (finish_reason IN ('stop', 'length', 'cancelled', 'error', 'shutdown'));

-- assign_message_seq(): a message inserted without seq gets the next one of its conversation.
-- The conversation row is locked first, so concurrent inserts into one conversation queue
-- there (gap-free, no unique violation); a rolled-back insert leaves no gap.
CREATE FUNCTION aichat.assign_message_seq() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF NEW.seq IS NULL THEN
        PERFORM 1 FROM aichat.conversations WHERE id = NEW.conversation_id FOR UPDATE;
        SELECT coalesce(max(m.seq), 0) + 1 INTO NEW.seq
          FROM aichat.messages m WHERE m.conversation_id = NEW.conversation_id;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_messages_assign_seq
    BEFORE INSERT ON aichat.messages
    FOR EACH ROW EXECUTE FUNCTION aichat.assign_message_seq();

CREATE UNIQUE INDEX messages_conversation_id_client_id_key
    ON aichat.messages (conversation_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX idx_messages_reply_to ON aichat.messages (reply_to);

ALTER TABLE aichat.plans
    ADD COLUMN monthly_message_quota integer,
    ADD CONSTRAINT plans_monthly_message_quota_non_negative CHECK (monthly_message_quota >= 0);
