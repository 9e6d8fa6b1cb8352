"""The payment-provider port shared by the realms: Stripe's HTTP API (`stripe.py`: payment
intents, refunds, webhook signatures). Realms hold the client in their api application and
say what a payment means for their own tables."""
