-- Financial system (seed 004, section 4): market.wallets (GoGoMoney), wallet_transactions,
-- commissions, bank_accounts, payouts; market.apply_wallet_transaction(), the one way to move
-- a wallet balance that keeps wallets and their transaction history in step.
-- Financial rows are never cascaded away: every foreign key here is NO ACTION.

-- ---------------------------------------------------------------------------------------------
-- wallets
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.wallets (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL,
    balance     numeric(12, 2) NOT NULL DEFAULT 0,
    currency    varchar(3) NOT NULL DEFAULT 'UZS',
    is_active   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT wallets_user_id_fkey FOREIGN KEY (user_id) REFERENCES market.users (id),
    -- A wallet never goes negative, whatever the concurrency of purchases, refunds, payouts.
    CONSTRAINT wallets_balance_non_negative CHECK (balance >= 0),
    CONSTRAINT wallets_currency_format CHECK (currency ~ '^[A-Z]{3}$')
);

CREATE UNIQUE INDEX idx_wallets_user_id ON market.wallets (user_id);

CREATE TRIGGER trg_wallets_updated_at
    BEFORE UPDATE ON market.wallets
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- wallet_transactions: append-only history of every balance change
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.wallet_transactions (
    id              bigserial PRIMARY KEY,
    wallet_id       bigint NOT NULL,
    type            market.transaction_type_enum NOT NULL,
    amount          numeric(12, 2) NOT NULL,
    balance_before  numeric(12, 2) NOT NULL,
    balance_after   numeric(12, 2) NOT NULL,
    reference_type  varchar(50),
    reference_id    bigint,
    description     text,
    metadata        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT wallet_transactions_wallet_id_fkey FOREIGN KEY (wallet_id)
        REFERENCES market.wallets (id),
    -- amount is the signed change of the balance.
    CONSTRAINT wallet_transactions_amount_not_zero CHECK (amount <> 0),
    CONSTRAINT wallet_transactions_balance_arithmetic
        CHECK (balance_after = balance_before + amount),
    CONSTRAINT wallet_transactions_balances_non_negative
        CHECK (balance_before >= 0 AND balance_after >= 0),
    -- Credits: deposit, refund, bonus. Debits: withdrawal, purchase, payout. A commission is
    -- either (charged to a seller, credited to the platform's wallet).
    CONSTRAINT wallet_transactions_direction_matches_type CHECK (
        CASE
            WHEN type IN ('deposit', 'refund', 'bonus') THEN amount > 0
            WHEN type IN ('withdrawal', 'purchase', 'payout') THEN amount < 0
            ELSE true
        END),
    CONSTRAINT wallet_transactions_reference_paired
        CHECK ((reference_type IS NULL) = (reference_id IS NULL)),
    CONSTRAINT wallet_transactions_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE INDEX idx_wallet_txn_wallet_id ON market.wallet_transactions (wallet_id);
CREATE INDEX idx_wallet_txn_type ON market.wallet_transactions (type);
CREATE INDEX idx_wallet_txn_reference ON market.wallet_transactions (reference_type, reference_id);
CREATE INDEX idx_wallet_txn_created ON market.wallet_transactions (created_at DESC);

CREATE TRIGGER trg_wallet_transactions_append_only
    BEFORE UPDATE ON market.wallet_transactions
    FOR EACH ROW EXECUTE FUNCTION market.refuse_update();

-- Moves a wallet's balance by p_amount (signed: credits > 0, debits < 0) and records the
-- transaction, in the caller's transaction. One conditional UPDATE: concurrent callers queue on
-- the wallet's row lock and each re-checks the balance it finds, so the balance never goes
-- below zero. Errors (nothing is written):
--   unknown wallet             -> no_data_found (P0002)
--   inactive wallet            -> check_violation, constraint wallets_is_active
--   balance would go below 0   -> check_violation, constraint wallets_balance_non_negative
--   amount 0, wrong sign, ...  -> the wallet_transactions CHECK that refuses it
CREATE FUNCTION market.apply_wallet_transaction(
    p_wallet_id       bigint,
    p_type            market.transaction_type_enum,
    p_amount          numeric,
    p_reference_type  varchar DEFAULT NULL,
    p_reference_id    bigint DEFAULT NULL,
    p_description     text DEFAULT NULL,
    p_metadata        jsonb DEFAULT NULL
) RETURNS market.wallet_transactions
LANGUAGE plpgsql AS $$
DECLARE
    v_after   numeric(12, 2);
    v_active  boolean;
    v_balance numeric(12, 2);
    v_txn     market.wallet_transactions;
BEGIN
    UPDATE market.wallets
       SET balance = balance + p_amount
     WHERE id = p_wallet_id AND is_active AND balance + p_amount >= 0
    RETURNING balance INTO v_after;
    IF NOT FOUND THEN
        SELECT is_active, balance INTO v_active, v_balance
          FROM market.wallets WHERE id = p_wallet_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'wallet % does not exist', p_wallet_id
                USING ERRCODE = 'no_data_found';
        ELSIF NOT v_active THEN
            RAISE EXCEPTION 'wallet % is not active', p_wallet_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_is_active';
        END IF;
        RAISE EXCEPTION 'insufficient funds: wallet % has %, change %',
            p_wallet_id, v_balance, p_amount
            USING ERRCODE = 'check_violation', CONSTRAINT = 'wallets_balance_non_negative';
    END IF;
    INSERT INTO market.wallet_transactions
        (wallet_id, type, amount, balance_before, balance_after, reference_type, reference_id,
         description, metadata)
    VALUES (p_wallet_id, p_type, p_amount, v_after - p_amount, v_after, p_reference_type,
            p_reference_id, p_description, p_metadata)
    RETURNING * INTO v_txn;
    RETURN v_txn;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- commissions: the platform's commission on an order
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.commissions (
    id                 bigserial PRIMARY KEY,
    order_id           bigint NOT NULL,
    seller_id          bigint NOT NULL,
    commission_rate    numeric(5, 2) NOT NULL,
    commission_amount  numeric(12, 2) NOT NULL,
    order_amount       numeric(12, 2) NOT NULL,
    status             market.commission_status_enum NOT NULL DEFAULT 'pending',
    paid_at            timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT commissions_order_id_fkey FOREIGN KEY (order_id) REFERENCES market.orders (id),
    CONSTRAINT commissions_seller_id_fkey FOREIGN KEY (seller_id) REFERENCES market.users (id),
    -- The seller is the order's seller.
    CONSTRAINT commissions_seller_is_order_seller FOREIGN KEY (order_id, seller_id)
        REFERENCES market.orders (id, seller_id),
    CONSTRAINT commissions_commission_rate_percentage
        CHECK (commission_rate BETWEEN 0 AND 100),
    CONSTRAINT commissions_amounts_non_negative
        CHECK (commission_amount >= 0 AND order_amount >= 0),
    CONSTRAINT commissions_commission_within_order_amount
        CHECK (commission_amount <= order_amount),
    CONSTRAINT commissions_paid_has_paid_at CHECK (status <> 'paid' OR paid_at IS NOT NULL)
);

CREATE INDEX idx_commissions_order_id ON market.commissions (order_id);
CREATE INDEX idx_commissions_seller_id ON market.commissions (seller_id);
CREATE INDEX idx_commissions_status ON market.commissions (status);

CREATE TRIGGER trg_commissions_updated_at
    BEFORE UPDATE ON market.commissions
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- bank_accounts
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.bank_accounts (
    id                   bigserial PRIMARY KEY,
    user_id              bigint NOT NULL,
    bank_name            varchar(200) NOT NULL,
    account_holder_name  varchar(200) NOT NULL,
    -- "Should be encrypted at application level": holds the application's ciphertext.
    account_number       varchar(100) NOT NULL,
    routing_number       varchar(50),
    is_default           boolean NOT NULL DEFAULT false,
    is_verified          boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    deleted_at           timestamptz,

    CONSTRAINT bank_accounts_user_id_fkey FOREIGN KEY (user_id) REFERENCES market.users (id),
    -- Target of payouts' "the bank account is the seller's" foreign key.
    CONSTRAINT bank_accounts_id_user_id_key UNIQUE (id, user_id)
);

CREATE INDEX idx_bank_accounts_user_id ON market.bank_accounts (user_id);
CREATE INDEX idx_bank_accounts_default ON market.bank_accounts (user_id, is_default);
-- At most one live default account per user.
CREATE UNIQUE INDEX idx_bank_accounts_one_default ON market.bank_accounts (user_id)
    WHERE is_default AND deleted_at IS NULL;

CREATE TRIGGER trg_bank_accounts_updated_at
    BEFORE UPDATE ON market.bank_accounts
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- payouts: money paid out to sellers
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.payouts (
    id               bigserial PRIMARY KEY,
    seller_id        bigint NOT NULL,
    amount           numeric(12, 2) NOT NULL,
    currency         varchar(3) NOT NULL DEFAULT 'UZS',
    method           market.payout_method_enum NOT NULL,
    status           market.payout_status_enum NOT NULL DEFAULT 'pending',
    bank_account_id  bigint,
    transaction_id   varchar(255),
    notes            text,
    processed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT payouts_seller_id_fkey FOREIGN KEY (seller_id) REFERENCES market.users (id),
    CONSTRAINT payouts_bank_account_id_fkey FOREIGN KEY (bank_account_id)
        REFERENCES market.bank_accounts (id),
    -- The bank account is the seller's own.
    CONSTRAINT payouts_bank_account_is_sellers FOREIGN KEY (bank_account_id, seller_id)
        REFERENCES market.bank_accounts (id, user_id),
    CONSTRAINT payouts_amount_positive CHECK (amount > 0),
    CONSTRAINT payouts_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT payouts_bank_transfer_needs_account
        CHECK (method <> 'bank_transfer' OR bank_account_id IS NOT NULL)
);

CREATE INDEX idx_payouts_seller_id ON market.payouts (seller_id);
CREATE INDEX idx_payouts_status ON market.payouts (status);
CREATE INDEX idx_payouts_created ON market.payouts (created_at DESC);
CREATE INDEX idx_payouts_bank_account_id ON market.payouts (bank_account_id)
    WHERE bank_account_id IS NOT NULL;

CREATE TRIGGER trg_payouts_updated_at
    BEFORE UPDATE ON market.payouts
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();
CREATE TRIGGER trg_payouts_seller_role
    BEFORE INSERT OR UPDATE OF seller_id ON market.payouts
    FOR EACH ROW EXECUTE FUNCTION market.require_user_role('seller_id', 'seller');
