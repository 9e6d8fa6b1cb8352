-- Creator realm, part 5 of 10: payments. Owns creator.transactions (every payment, with gross,
-- platform fee and net, an idempotency key, and at most one live purchase per buyer and item),
-- creator.tips, the view creator.tips_received (anonymous tippers masked), and the access
-- functions message_unlocked_for() and content_accessible_to(). Adds stream_access's
-- foreign key to transactions.
-- Relies on 3001-3004.
--
-- Amounts are bigint minor units (cents) and always positive; transaction_type says which way
-- the money goes (a refund or a payout is not a negative amount).

-- ---------------------------------------------------------------------------------------------
-- transactions
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.transactions (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                   uuid NOT NULL,
    creator_id                uuid NOT NULL,
    transaction_type          varchar(30) NOT NULL,
    status                    varchar(20) NOT NULL DEFAULT 'pending',
    gross_amount              bigint NOT NULL,
    platform_fee              bigint NOT NULL DEFAULT 0,
    net_amount                bigint NOT NULL,
    currency                  char(3) NOT NULL DEFAULT 'USD',
    idempotency_key           varchar(255) NOT NULL,
    subscription_id           uuid,
    content_id                uuid,
    message_id                uuid,
    live_stream_id            uuid,
    related_transaction_id    uuid,
    payment_method            varchar(20),
    payment_processor         varchar(50),
    processor_transaction_id  varchar(255),
    failure_code              varchar(100),
    failure_reason            text,
    completed_at              timestamptz,
    metadata                  jsonb NOT NULL DEFAULT '{}',
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT transactions_user_id_fkey FOREIGN KEY (user_id) REFERENCES creator.users (id),
    CONSTRAINT transactions_creator_id_fkey FOREIGN KEY (creator_id)
        REFERENCES creator.users (id),
    CONSTRAINT transactions_subscription_id_fkey FOREIGN KEY (subscription_id)
        REFERENCES creator.subscriptions (id),
    -- Content is purged 30 days after its deletion (3009); the payment stays.
    CONSTRAINT transactions_content_id_fkey FOREIGN KEY (content_id)
        REFERENCES creator.content (id) ON DELETE SET NULL,
    CONSTRAINT transactions_message_id_fkey FOREIGN KEY (message_id)
        REFERENCES creator.messages (id),
    CONSTRAINT transactions_live_stream_id_fkey FOREIGN KEY (live_stream_id)
        REFERENCES creator.live_streams (id),
    CONSTRAINT transactions_related_transaction_id_fkey FOREIGN KEY (related_transaction_id)
        REFERENCES creator.transactions (id),
    CONSTRAINT transactions_idempotency_key_key UNIQUE (idempotency_key),
    -- Target of stream_access's (transaction_id, user_id, live_stream_id) foreign key.
    CONSTRAINT transactions_id_user_id_live_stream_id_key UNIQUE (id, user_id, live_stream_id),
    CONSTRAINT transactions_transaction_type_valid
        CHECK (transaction_type IN ('subscription', 'tip', 'content_purchase', 'message_purchase',
                                    'stream_access', 'payout', 'refund')),
    CONSTRAINT transactions_status_valid
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled',
                          'refunded')),
    CONSTRAINT transactions_gross_amount_positive CHECK (gross_amount > 0),
    CONSTRAINT transactions_platform_fee_non_negative CHECK (platform_fee >= 0),
    CONSTRAINT transactions_platform_fee_within_gross CHECK (platform_fee <= gross_amount),
    CONSTRAINT transactions_net_amount_is_gross_minus_fee
        CHECK (net_amount = gross_amount - platform_fee),
    CONSTRAINT transactions_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT transactions_idempotency_key_not_blank CHECK (btrim(idempotency_key) <> ''),
    -- Nobody pays themselves ("buying your own message"); a payout is the creator's own.
    CONSTRAINT transactions_payer_not_creator
        CHECK (transaction_type = 'payout' OR user_id <> creator_id),
    CONSTRAINT transactions_payout_to_creator
        CHECK (transaction_type <> 'payout' OR user_id = creator_id),
    -- Each item reference appears only on its own type (or on a refund, which may repeat it).
    -- That the reference is given at all is checked at insert (check_new_transaction), since
    -- a purged content row leaves content_id NULL.
    CONSTRAINT transactions_subscription_id_matches_type
        CHECK (subscription_id IS NULL OR transaction_type IN ('subscription', 'refund')),
    CONSTRAINT transactions_content_id_matches_type
        CHECK (content_id IS NULL OR transaction_type IN ('content_purchase', 'refund')),
    CONSTRAINT transactions_message_id_matches_type
        CHECK (message_id IS NULL OR transaction_type IN ('message_purchase', 'refund')),
    CONSTRAINT transactions_live_stream_id_matches_type
        CHECK (live_stream_id IS NULL OR transaction_type IN ('stream_access', 'refund')),
    CONSTRAINT transactions_refund_has_original
        CHECK ((transaction_type = 'refund') = (related_transaction_id IS NOT NULL)),
    CONSTRAINT transactions_not_own_original CHECK (related_transaction_id <> id),
    CONSTRAINT transactions_payment_method_valid
        CHECK (payment_method IN ('card', 'wallet', 'bank_transfer', 'paypal', 'crypto')),
    -- "Failure reason logging".
    CONSTRAINT transactions_failed_has_reason
        CHECK (status <> 'failed' OR failure_reason IS NOT NULL),
    CONSTRAINT transactions_completed_has_time
        CHECK (status NOT IN ('completed', 'refunded') OR completed_at IS NOT NULL),
    CONSTRAINT transactions_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

COMMENT ON COLUMN creator.transactions.gross_amount IS 'Amount charged, minor units (cents)';
COMMENT ON COLUMN creator.transactions.platform_fee IS 'Platform fee, minor units (cents)';
COMMENT ON COLUMN creator.transactions.net_amount IS
    'gross_amount - platform_fee: the creator''s earnings (for a payout: what is paid out)';

-- A retried purchase never charges twice: at most one pending, processing or completed
-- purchase per buyer and item (a failed, cancelled or refunded one may be followed by another).
CREATE UNIQUE INDEX transactions_one_message_purchase ON creator.transactions (message_id, user_id)
    WHERE transaction_type = 'message_purchase'
      AND status IN ('pending', 'processing', 'completed');
CREATE UNIQUE INDEX transactions_one_content_purchase ON creator.transactions (content_id, user_id)
    WHERE transaction_type = 'content_purchase'
      AND status IN ('pending', 'processing', 'completed');
CREATE UNIQUE INDEX transactions_one_stream_access ON creator.transactions (live_stream_id, user_id)
    WHERE transaction_type = 'stream_access'
      AND status IN ('pending', 'processing', 'completed');
-- A processor's id names one payment (webhook lookups).
CREATE UNIQUE INDEX transactions_processor_transaction_id_key ON creator.transactions
    (payment_processor, processor_transaction_id) WHERE processor_transaction_id IS NOT NULL;

-- Payment history of a payer and earnings of a creator, newest first; also their FK indexes.
CREATE INDEX idx_transactions_user_id ON creator.transactions (user_id, created_at DESC);
CREATE INDEX idx_transactions_creator_id ON creator.transactions (creator_id, created_at DESC);
CREATE INDEX idx_transactions_subscription_id ON creator.transactions (subscription_id)
    WHERE subscription_id IS NOT NULL;
CREATE INDEX idx_transactions_content_id ON creator.transactions (content_id)
    WHERE content_id IS NOT NULL;
CREATE INDEX idx_transactions_message_id ON creator.transactions (message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX idx_transactions_live_stream_id ON creator.transactions (live_stream_id)
    WHERE live_stream_id IS NOT NULL;
CREATE INDEX idx_transactions_related_transaction_id ON creator.transactions
    (related_transaction_id) WHERE related_transaction_id IS NOT NULL;
-- Revenue rollups (3006) read completed payments by completion time.
CREATE INDEX idx_transactions_completed_at ON creator.transactions (completed_at)
    WHERE status = 'completed';
-- Payments waiting on the processor.
CREATE INDEX idx_transactions_open ON creator.transactions (created_at)
    WHERE status IN ('pending', 'processing');

CREATE TRIGGER trg_transactions_updated_at
    BEFORE UPDATE ON creator.transactions
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- check_new_transaction(): BEFORE INSERT. Every purchase names its item, the item belongs to
-- the transaction's creator and buyer, and the amount is the item's price; a refund refunds a
-- payment between the same two users and never more, in total, than it charged.
-- Errors are check_violations named transactions_reference_required,
-- transactions_reference_matches_parties, transactions_amount_matches_price and
-- transactions_refund_within_original.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION creator.check_new_transaction() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_owner   uuid;
    v_buyer   uuid;
    v_price   bigint;
    v_orig    creator.transactions%ROWTYPE;
    v_refunded bigint;
BEGIN
    IF (NEW.transaction_type = 'subscription' AND NEW.subscription_id IS NULL)
       OR (NEW.transaction_type = 'content_purchase' AND NEW.content_id IS NULL)
       OR (NEW.transaction_type = 'message_purchase' AND NEW.message_id IS NULL)
       OR (NEW.transaction_type = 'stream_access' AND NEW.live_stream_id IS NULL) THEN
        RAISE EXCEPTION 'a % transaction must name what it pays for', NEW.transaction_type
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_reference_required',
                  TABLE = 'transactions', SCHEMA = 'creator';
    END IF;

    IF NEW.transaction_type = 'subscription' THEN
        SELECT creator_id, subscriber_id, price INTO v_owner, v_buyer, v_price
          FROM creator.subscriptions WHERE id = NEW.subscription_id;
    ELSIF NEW.transaction_type = 'content_purchase' THEN
        SELECT creator_id, NEW.user_id, price INTO v_owner, v_buyer, v_price
          FROM creator.content WHERE id = NEW.content_id;
    ELSIF NEW.transaction_type = 'message_purchase' THEN
        -- Only the fan of the conversation buys, and only a message the creator sent.
        SELECT CASE WHEN m.sender_id = c.creator_id THEN m.sender_id END, c.fan_id, m.price
          INTO v_owner, v_buyer, v_price
          FROM creator.messages m JOIN creator.conversations c ON c.id = m.conversation_id
         WHERE m.id = NEW.message_id;
    ELSIF NEW.transaction_type = 'stream_access' THEN
        SELECT creator_id, NEW.user_id, price INTO v_owner, v_buyer, v_price
          FROM creator.live_streams WHERE id = NEW.live_stream_id;
    END IF;

    IF NEW.transaction_type IN ('subscription', 'content_purchase', 'message_purchase',
                                'stream_access') THEN
        IF v_buyer IS NULL THEN
            RETURN NEW;  -- unknown item: its foreign key rejects the row
        END IF;
        IF v_owner IS DISTINCT FROM NEW.creator_id OR v_buyer IS DISTINCT FROM NEW.user_id THEN
            RAISE EXCEPTION 'the % does not belong to this creator and buyer',
                    NEW.transaction_type
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'transactions_reference_matches_parties',
                      TABLE = 'transactions', SCHEMA = 'creator';
        END IF;
        IF v_price IS DISTINCT FROM NEW.gross_amount THEN
            RAISE EXCEPTION 'gross_amount % is not the price % of the item',
                    NEW.gross_amount, coalesce(v_price::text, 'NULL (not for sale)')
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'transactions_amount_matches_price',
                      TABLE = 'transactions', SCHEMA = 'creator';
        END IF;
    END IF;

    IF NEW.transaction_type = 'refund' THEN
        -- Locked, so concurrent refunds of one payment are summed one after the other.
        SELECT * INTO v_orig FROM creator.transactions
         WHERE id = NEW.related_transaction_id FOR UPDATE;
        IF NOT FOUND THEN
            RETURN NEW;  -- transactions_related_transaction_id_fkey rejects it
        END IF;
        SELECT coalesce(sum(gross_amount), 0) INTO v_refunded FROM creator.transactions
         WHERE related_transaction_id = v_orig.id AND transaction_type = 'refund'
           AND status NOT IN ('failed', 'cancelled');
        IF v_orig.transaction_type IN ('refund', 'payout')
           OR v_orig.user_id <> NEW.user_id OR v_orig.creator_id <> NEW.creator_id
           OR v_orig.currency <> NEW.currency
           OR v_refunded + NEW.gross_amount > v_orig.gross_amount THEN
            RAISE EXCEPTION 'refund of % exceeds or does not match transaction %',
                    NEW.gross_amount, v_orig.id
                USING ERRCODE = 'check_violation',
                      CONSTRAINT = 'transactions_refund_within_original',
                      TABLE = 'transactions', SCHEMA = 'creator';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_transactions_check_new
    BEFORE INSERT ON creator.transactions
    FOR EACH ROW EXECUTE FUNCTION creator.check_new_transaction();

-- ---------------------------------------------------------------------------------------------
-- guard_transaction_update(): BEFORE UPDATE. Who pays whom, for what, under which key never
-- changes (content_id may only be cleared, by the purge of its content); amounts are fixed once
-- a payment has left pending/processing; status only moves forward:
--   pending    -> processing | completed | failed | cancelled
--   processing -> completed | failed | cancelled
--   completed  -> refunded
--   failed, cancelled, refunded: final
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION creator.guard_transaction_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_id IS DISTINCT FROM OLD.user_id
       OR NEW.creator_id IS DISTINCT FROM OLD.creator_id
       OR NEW.transaction_type IS DISTINCT FROM OLD.transaction_type
       OR NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key
       OR NEW.currency IS DISTINCT FROM OLD.currency
       OR NEW.subscription_id IS DISTINCT FROM OLD.subscription_id
       OR (NEW.content_id IS DISTINCT FROM OLD.content_id AND NEW.content_id IS NOT NULL)
       OR NEW.message_id IS DISTINCT FROM OLD.message_id
       OR NEW.live_stream_id IS DISTINCT FROM OLD.live_stream_id
       OR NEW.related_transaction_id IS DISTINCT FROM OLD.related_transaction_id
       OR (OLD.status NOT IN ('pending', 'processing')
           AND (NEW.gross_amount IS DISTINCT FROM OLD.gross_amount
                OR NEW.platform_fee IS DISTINCT FROM OLD.platform_fee
                OR NEW.net_amount IS DISTINCT FROM OLD.net_amount)) THEN
        RAISE EXCEPTION 'transaction %: parties, type, key, item and settled amounts are immutable',
                OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_immutable',
                  TABLE = 'transactions', SCHEMA = 'creator';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT (
           (OLD.status = 'pending'
            AND NEW.status IN ('processing', 'completed', 'failed', 'cancelled'))
        OR (OLD.status = 'processing' AND NEW.status IN ('completed', 'failed', 'cancelled'))
        OR (OLD.status = 'completed' AND NEW.status = 'refunded')) THEN
        RAISE EXCEPTION 'transaction % cannot go from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_status_transition',
                  TABLE = 'transactions', SCHEMA = 'creator';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_transactions_guard_update
    BEFORE UPDATE ON creator.transactions
    FOR EACH ROW EXECUTE FUNCTION creator.guard_transaction_update();

-- stream_access: paid access is a stream_access payment by that viewer for that stream.
ALTER TABLE creator.stream_access
    ADD CONSTRAINT stream_access_transaction_fkey
        FOREIGN KEY (transaction_id, user_id, live_stream_id)
        REFERENCES creator.transactions (id, user_id, live_stream_id);

-- ---------------------------------------------------------------------------------------------
-- tips: a fan's direct support of a creator, paid by one transaction of type tip
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.tips (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tipper_id       uuid NOT NULL,
    creator_id      uuid NOT NULL,
    transaction_id  uuid NOT NULL,
    amount          bigint NOT NULL,
    currency        char(3) NOT NULL DEFAULT 'USD',
    message         text,
    is_anonymous    boolean NOT NULL DEFAULT false,
    content_id      uuid,
    message_id      uuid,
    live_stream_id  uuid,
    payment_method  varchar(20),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT tips_tipper_id_fkey FOREIGN KEY (tipper_id) REFERENCES creator.users (id),
    CONSTRAINT tips_creator_id_fkey FOREIGN KEY (creator_id) REFERENCES creator.users (id),
    CONSTRAINT tips_transaction_id_fkey FOREIGN KEY (transaction_id)
        REFERENCES creator.transactions (id),
    CONSTRAINT tips_transaction_id_key UNIQUE (transaction_id),
    -- The tip outlives the content, message or stream it was given on.
    CONSTRAINT tips_content_id_fkey FOREIGN KEY (content_id)
        REFERENCES creator.content (id) ON DELETE SET NULL,
    CONSTRAINT tips_message_id_fkey FOREIGN KEY (message_id)
        REFERENCES creator.messages (id) ON DELETE SET NULL,
    CONSTRAINT tips_live_stream_id_fkey FOREIGN KEY (live_stream_id)
        REFERENCES creator.live_streams (id) ON DELETE SET NULL,
    CONSTRAINT tips_amount_positive CHECK (amount > 0),
    CONSTRAINT tips_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT tips_not_self CHECK (tipper_id <> creator_id),
    CONSTRAINT tips_message_length CHECK (char_length(message) BETWEEN 1 AND 500),
    CONSTRAINT tips_one_context CHECK (num_nonnulls(content_id, message_id, live_stream_id) <= 1),
    CONSTRAINT tips_payment_method_valid
        CHECK (payment_method IN ('card', 'wallet', 'bank_transfer', 'paypal', 'crypto'))
);

COMMENT ON COLUMN creator.tips.amount IS 'Tip in minor units (cents); equals its transaction''s gross_amount';

CREATE INDEX idx_tips_creator_id ON creator.tips (creator_id, created_at DESC);
CREATE INDEX idx_tips_tipper_id ON creator.tips (tipper_id, created_at DESC);
CREATE INDEX idx_tips_content_id ON creator.tips (content_id) WHERE content_id IS NOT NULL;
CREATE INDEX idx_tips_message_id ON creator.tips (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX idx_tips_live_stream_id ON creator.tips (live_stream_id)
    WHERE live_stream_id IS NOT NULL;

CREATE TRIGGER trg_tips_updated_at
    BEFORE UPDATE ON creator.tips
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- A tip agrees with its transaction (type tip, same payer, creator, amount and currency) and
-- its context belongs to the tipped creator (their content, a message in their conversation
-- with the tipper, their stream).
CREATE FUNCTION creator.check_tip() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM creator.transactions t
         WHERE t.id = NEW.transaction_id AND t.transaction_type = 'tip'
           AND t.user_id = NEW.tipper_id AND t.creator_id = NEW.creator_id
           AND t.gross_amount = NEW.amount AND t.currency = NEW.currency
    ) AND EXISTS (SELECT 1 FROM creator.transactions WHERE id = NEW.transaction_id) THEN
        RAISE EXCEPTION 'tip does not match transaction %', NEW.transaction_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tips_transaction_matches',
                  TABLE = 'tips', SCHEMA = 'creator';
    END IF;
    IF (NEW.content_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM creator.content
             WHERE id = NEW.content_id AND creator_id = NEW.creator_id))
       OR (NEW.message_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM creator.messages m JOIN creator.conversations c
                ON c.id = m.conversation_id
             WHERE m.id = NEW.message_id AND c.creator_id = NEW.creator_id
               AND c.fan_id = NEW.tipper_id))
       OR (NEW.live_stream_id IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM creator.live_streams
             WHERE id = NEW.live_stream_id AND creator_id = NEW.creator_id)) THEN
        RAISE EXCEPTION 'the tip''s context does not belong to creator %', NEW.creator_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tips_context_matches_creator',
                  TABLE = 'tips', SCHEMA = 'creator';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_tips_check
    BEFORE INSERT OR UPDATE OF tipper_id, creator_id, transaction_id, amount, currency,
                               content_id, message_id, live_stream_id ON creator.tips
    FOR EACH ROW EXECUTE FUNCTION creator.check_tip();

-- tips_received: the completed tips as a creator may see them. An anonymous tipper's id is
-- NULL here; serve creators from this view, never from creator.tips or the tip's transaction.
CREATE VIEW creator.tips_received WITH (security_barrier) AS
SELECT t.id, t.creator_id,
       CASE WHEN t.is_anonymous THEN NULL ELSE t.tipper_id END AS tipper_id,
       t.amount, t.currency, t.message, t.is_anonymous,
       t.content_id, t.message_id, t.live_stream_id, x.completed_at, t.created_at
  FROM creator.tips t
  JOIN creator.transactions x ON x.id = t.transaction_id
 WHERE x.status = 'completed';

-- ---------------------------------------------------------------------------------------------
-- Access to paid things
-- ---------------------------------------------------------------------------------------------

-- message_unlocked_for(message, user): the user may see the message's body and attachments:
-- it has no price, or the user sent it, or the user's message_purchase of it is completed.
-- NULL for an unknown message.
CREATE FUNCTION creator.message_unlocked_for(p_message_id uuid, p_user_id uuid)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT m.price IS NULL OR m.sender_id = p_user_id OR EXISTS (
               SELECT 1 FROM creator.transactions t
                WHERE t.message_id = m.id AND t.user_id = p_user_id
                  AND t.transaction_type = 'message_purchase' AND t.status = 'completed')
      FROM creator.messages m
     WHERE m.id = p_message_id;
$$;

-- content_accessible_to(content, user): the user may see the content. Its creator always may.
-- Anyone else only while it is published, not deleted, and approved (or flagged: under review);
-- age-restricted content only to an age-verified user. Then premium content needs a completed
-- content_purchase, and otherwise subscriber-only content an active subscription.
-- NULL for unknown content.
CREATE FUNCTION creator.content_accessible_to(p_content_id uuid, p_user_id uuid)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE
               WHEN c.creator_id = p_user_id THEN true
               WHEN c.deleted_at IS NOT NULL OR c.status <> 'published'
                    OR c.moderation_status NOT IN ('approved', 'flagged') THEN false
               WHEN c.is_age_restricted AND NOT EXISTS (
                   SELECT 1 FROM creator.users u WHERE u.id = p_user_id AND u.age_verified)
                   THEN false
               WHEN c.is_premium THEN EXISTS (
                   SELECT 1 FROM creator.transactions t
                    WHERE t.content_id = c.id AND t.user_id = p_user_id
                      AND t.transaction_type = 'content_purchase' AND t.status = 'completed')
               WHEN c.is_subscriber_only THEN
                   creator.has_active_subscription(p_user_id, c.creator_id)
               ELSE true
           END
      FROM creator.content c
     WHERE c.id = p_content_id;
$$;
