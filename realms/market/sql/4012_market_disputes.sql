-- Disputes and returns (seed 004, section 10): market.disputes, dispute_messages, returns,
-- return_items.

-- ---------------------------------------------------------------------------------------------
-- disputes
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.disputes (
    id           bigserial PRIMARY KEY,
    order_id     bigint NOT NULL,
    opened_by    bigint NOT NULL,
    type         market.dispute_type_enum NOT NULL,
    reason       text NOT NULL,
    status       market.dispute_status_enum NOT NULL DEFAULT 'open',
    resolution   text,
    resolved_by  bigint,
    resolved_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT disputes_order_id_fkey FOREIGN KEY (order_id) REFERENCES market.orders (id),
    CONSTRAINT disputes_opened_by_fkey FOREIGN KEY (opened_by) REFERENCES market.users (id),
    CONSTRAINT disputes_resolved_by_fkey FOREIGN KEY (resolved_by)
        REFERENCES market.users (id) ON DELETE SET NULL,
    CONSTRAINT disputes_reason_not_blank CHECK (reason ~ '\S')
);

CREATE INDEX idx_disputes_order_id ON market.disputes (order_id);
CREATE INDEX idx_disputes_opened_by ON market.disputes (opened_by);
CREATE INDEX idx_disputes_status ON market.disputes (status);
CREATE INDEX idx_disputes_resolved_by ON market.disputes (resolved_by)
    WHERE resolved_by IS NOT NULL;

CREATE TRIGGER trg_disputes_updated_at
    BEFORE UPDATE ON market.disputes
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- dispute_messages
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.dispute_messages (
    id           bigserial PRIMARY KEY,
    dispute_id   bigint NOT NULL,
    user_id      bigint NOT NULL,
    content      text NOT NULL,
    attachments  jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT dispute_messages_dispute_id_fkey FOREIGN KEY (dispute_id)
        REFERENCES market.disputes (id) ON DELETE CASCADE,
    CONSTRAINT dispute_messages_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id),
    CONSTRAINT dispute_messages_content_not_blank CHECK (content ~ '\S'),
    -- "Attachment URLs": a JSON array.
    CONSTRAINT dispute_messages_attachments_array CHECK (jsonb_typeof(attachments) = 'array')
);

CREATE INDEX idx_dispute_messages_dispute_id ON market.dispute_messages (dispute_id);
CREATE INDEX idx_dispute_messages_created ON market.dispute_messages (created_at DESC);
CREATE INDEX idx_dispute_messages_user_id ON market.dispute_messages (user_id);

-- ---------------------------------------------------------------------------------------------
-- returns: product return requests
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.returns (
    id               bigserial PRIMARY KEY,
    order_id         bigint NOT NULL,
    buyer_id         bigint NOT NULL,
    reason           text NOT NULL,
    status           market.return_status_enum NOT NULL DEFAULT 'requested',
    refund_amount    numeric(12, 2) NOT NULL,
    refund_method    market.refund_method_enum NOT NULL,
    tracking_number  varchar(100),
    notes            text,
    approved_by      bigint,
    approved_at      timestamptz,
    completed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT returns_order_id_fkey FOREIGN KEY (order_id) REFERENCES market.orders (id),
    CONSTRAINT returns_buyer_id_fkey FOREIGN KEY (buyer_id) REFERENCES market.users (id),
    -- Only the order's buyer returns its items.
    CONSTRAINT returns_buyer_is_order_buyer FOREIGN KEY (order_id, buyer_id)
        REFERENCES market.orders (id, buyer_id),
    CONSTRAINT returns_approved_by_fkey FOREIGN KEY (approved_by)
        REFERENCES market.users (id) ON DELETE SET NULL,
    CONSTRAINT returns_reason_not_blank CHECK (reason ~ '\S'),
    CONSTRAINT returns_refund_amount_non_negative CHECK (refund_amount >= 0)
);

CREATE INDEX idx_returns_order_id ON market.returns (order_id);
CREATE INDEX idx_returns_buyer_id ON market.returns (buyer_id);
CREATE INDEX idx_returns_status ON market.returns (status);
CREATE INDEX idx_returns_approved_by ON market.returns (approved_by)
    WHERE approved_by IS NOT NULL;

CREATE TRIGGER trg_returns_updated_at
    BEFORE UPDATE ON market.returns
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- return_items
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.return_items (
    id             bigserial PRIMARY KEY,
    return_id      bigint NOT NULL,
    order_item_id  bigint NOT NULL,
    quantity       integer NOT NULL,
    reason         text,
    condition      market.return_condition_enum NOT NULL,
    images         jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT return_items_return_id_fkey FOREIGN KEY (return_id)
        REFERENCES market.returns (id) ON DELETE CASCADE,
    CONSTRAINT return_items_order_item_id_fkey FOREIGN KEY (order_item_id)
        REFERENCES market.order_items (id),
    CONSTRAINT return_items_return_id_order_item_id_key UNIQUE (return_id, order_item_id),
    CONSTRAINT return_items_quantity_positive CHECK (quantity > 0),
    CONSTRAINT return_items_images_array CHECK (jsonb_typeof(images) = 'array')
);

CREATE INDEX idx_return_items_return_id ON market.return_items (return_id);
CREATE INDEX idx_return_items_order_item_id ON market.return_items (order_item_id);

-- The returned item belongs to the return's order, and no more is returned than was ordered.
CREATE FUNCTION market.check_return_item() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_return_order  bigint;
    v_item_order    bigint;
    v_ordered       integer;
BEGIN
    SELECT order_id INTO v_return_order FROM market.returns WHERE id = NEW.return_id;
    SELECT order_id, quantity INTO v_item_order, v_ordered
      FROM market.order_items WHERE id = NEW.order_item_id;
    IF v_return_order IS NULL OR v_item_order IS NULL THEN
        RETURN NEW;  -- the foreign keys report unknown rows
    END IF;
    IF v_item_order <> v_return_order THEN
        RAISE EXCEPTION 'order item % is not part of order %', NEW.order_item_id, v_return_order
            USING ERRCODE = 'check_violation', CONSTRAINT = 'return_items_item_of_return_order';
    END IF;
    IF NEW.quantity > v_ordered THEN
        RAISE EXCEPTION 'cannot return % of order item %: % ordered',
            NEW.quantity, NEW.order_item_id, v_ordered
            USING ERRCODE = 'check_violation', CONSTRAINT = 'return_items_quantity_within_ordered';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_return_items_check
    BEFORE INSERT OR UPDATE OF return_id, order_item_id, quantity ON market.return_items
    FOR EACH ROW EXECUTE FUNCTION market.check_return_item();
