"""Market card and bank-transfer payments (docs/realm-market.md, "Card and bank-transfer
payments"): `provider` holds the Stripe client in the api application, `card` charges a
checkout's order, `webhook` settles intents that finish later, `transfer` is accounting's
bank-transfer confirmation, `refunds` the job that sends Stripe the refunds the realm
recorded, and `trail` the audit rows and notices they share. Every payment outcome is a
market.audit_logs row (entity `order`), which also keeps the order's PaymentIntent id."""
