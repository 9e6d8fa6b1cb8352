"""AI providers of the aichat realm: one streaming interface (base.py), the OpenAI Chat
Completions adapter, the Anthropic Messages adapter, and the built-in offline provider;
`router.py` picks one for a conversation's model."""
