-- Realm aichat: each user's Stripe customer, kept from the moment it is made (**added**,
-- docs/realm-aichat.md, "Schema additions"). The seed keeps the customer only on a
-- subscription row, which a first subscribe whose card then fails never writes: without this
-- table a retry after Stripe's idempotency window (24 h) would make a second customer and
-- leave the first one orphaned in Stripe.

CREATE TABLE aichat.billing_customers (
    user_id            uuid PRIMARY KEY REFERENCES aichat.users (id) ON DELETE CASCADE,
    stripe_customer_id varchar(255) NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now()
);

INSERT INTO aichat.billing_customers (user_id, stripe_customer_id)
SELECT user_id, stripe_customer_id FROM aichat.subscriptions
ON CONFLICT DO NOTHING;
