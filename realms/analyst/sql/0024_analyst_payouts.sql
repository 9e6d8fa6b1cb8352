-- Issue 21 item 3: paying analysts their share (payout_amount, 80 % by default) through the
-- payment gateway's payouts API. The seed keeps payouts in payment_transactions
-- (transaction_type 'payout'; payout_amount, payout_status, razorpay_payout_id, paid_out_at);
-- this is how the columns are read:
--
-- * A captured subscription payment or renewal is a *source*: its payout_status is
--   'pending' (earned, not yet in a payout), 'in_payout' (in a payout being paid),
--   'paid' (that payout was processed) or 'cancelled' (refunded before it was paid out).
-- * A payout is a row of its own, transaction_type 'payout', for one analyst: amount = the sum
--   of its sources' payout_amount, payout_amount = amount, platform_commission = 0 (so the
--   seed's payout_amount + platform_commission = amount holds for it too), no payer and no
--   subscription. Its payout_status is 'created' until the payouts API has answered, then the
--   gateway's own status ('queued', 'pending', 'processing', 'processed', 'reversed',
--   'cancelled', 'rejected', 'failed'). Its id is the idempotency key and reference_id sent
--   to the API, so a payout is created there at most once however often it is sent.
-- * Each source names its payout (payout_transaction_id). A source in a live payout cannot be
--   moved to another one; it is released only when its payout fails, so one share is never
--   paid twice.
-- * The analyst's RazorpayX fund account (the bank account or VPA the money goes to) is
--   analyst_profiles.razorpay_fund_account_id.

ALTER TABLE analyst.analyst_profiles
    ADD COLUMN razorpay_fund_account_id varchar(50),
    ADD CONSTRAINT analyst_profiles_razorpay_fund_account_id_format
        CHECK (razorpay_fund_account_id ~ '^fa_[A-Za-z0-9]{14}$');

ALTER TABLE analyst.payment_transactions
    ADD COLUMN payout_transaction_id uuid,
    ADD CONSTRAINT payment_transactions_id_analyst_id_key UNIQUE (id, analyst_id),
    -- A source's payout is one of its own analyst's.
    ADD CONSTRAINT payment_transactions_payout_transaction_id_fkey
        FOREIGN KEY (payout_transaction_id, analyst_id)
        REFERENCES analyst.payment_transactions (id, analyst_id),
    ADD CONSTRAINT payment_transactions_payout_status_valid CHECK (payout_status IN (
        'pending', 'in_payout', 'paid', 'cancelled',
        'created', 'queued', 'processing', 'processed', 'reversed', 'rejected', 'failed')),
    -- A payout is not itself a share of one, and the platform takes no commission on it.
    -- (The API also writes analyst_id, payout_amount = amount and no payer; those are not
    -- constraints, so the minimal 'payout' rows the seed allows stay valid.)
    ADD CONSTRAINT payment_transactions_payout_shape CHECK (
        transaction_type <> 'payout'
        OR (payout_transaction_id IS NULL AND coalesce(platform_commission, 0) = 0)),
    ADD CONSTRAINT payment_transactions_source_has_its_payout CHECK (
        transaction_type = 'payout'
        OR (coalesce(payout_status, '') IN ('in_payout', 'paid'))
           = (payout_transaction_id IS NOT NULL));

CREATE INDEX idx_payment_transactions_payout_transaction_id
    ON analyst.payment_transactions (payout_transaction_id) WHERE payout_transaction_id IS NOT NULL;
-- What the batch pays: captured shares not yet in a payout, per analyst.
CREATE INDEX idx_payment_transactions_payout_due
    ON analyst.payment_transactions (analyst_id, created_at)
    WHERE payout_status = 'pending' AND status = 'captured';
-- A payout at the gateway is recorded once; the webhook finds it by this id.
CREATE UNIQUE INDEX idx_payment_transactions_razorpay_payout_id
    ON analyst.payment_transactions (razorpay_payout_id)
    WHERE transaction_type = 'payout' AND razorpay_payout_id IS NOT NULL;
-- Payouts still to send or to settle.
CREATE INDEX idx_payment_transactions_payouts_open
    ON analyst.payment_transactions (created_at)
    WHERE transaction_type = 'payout'
      AND payout_status IN ('created', 'queued', 'pending', 'processing');

-- A source in a payout that has not failed keeps it: moving it to another payout (or out of
-- one) would let one share be paid twice. Releasing it is allowed once its payout failed.
CREATE OR REPLACE FUNCTION analyst.keep_payout_membership() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.payout_transaction_id IS NOT NULL
       AND NEW.payout_transaction_id IS DISTINCT FROM OLD.payout_transaction_id
       AND EXISTS (SELECT 1 FROM analyst.payment_transactions p
                    WHERE p.id = OLD.payout_transaction_id
                      AND p.payout_status NOT IN ('failed', 'rejected', 'cancelled', 'reversed'))
    THEN
        RAISE EXCEPTION 'payment % is in payout %, which has not failed',
            OLD.id, OLD.payout_transaction_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_payment_transactions_keep_payout
    BEFORE UPDATE OF payout_transaction_id ON analyst.payment_transactions
    FOR EACH ROW EXECUTE FUNCTION analyst.keep_payout_membership();
