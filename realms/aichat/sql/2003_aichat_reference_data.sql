-- Realm aichat: the reference rows a fresh installation needs so that `make run` works
-- offline (**added**, docs/realm-aichat.md): the three plans of the seed's comment ("Free,
-- Plus, Pro") and the two providers whose models the conversations' CHECK offers. Prices are
-- per 1K tokens and per month, as the seed's columns say; operators change them with UPDATE
-- (or the provider admin routes). Existing rows are left alone.

INSERT INTO aichat.plans (name, monthly_price, yearly_price, monthly_token_quota,
                          monthly_message_quota, max_conversations,
                          max_messages_per_conversation, features)
VALUES ('Free', 0.00, NULL, 100000, 200, 50, 200, '["gpt-3.5-turbo"]'),
       ('Plus', 20.00, 200.00, 1000000, 5000, NULL, 1000, '["gpt-4o", "claude-3-sonnet"]'),
       ('Pro', 50.00, 500.00, 5000000, NULL, NULL, NULL,
        '["gpt-4", "gpt-4o", "claude-3-opus", "claude-3-sonnet", "priority"]')
ON CONFLICT (name) DO NOTHING;

INSERT INTO aichat.ai_providers (name, input_token_cost_per_1k, output_token_cost_per_1k,
                                 requests_per_minute, requests_per_day, supported_models)
VALUES ('openai', 0.00250000, 0.01000000, 500, 10000, '["gpt-4", "gpt-4o", "gpt-3.5-turbo"]'),
       ('anthropic', 0.00300000, 0.01500000, 50, 10000, '["claude-3-opus", "claude-3-sonnet"]')
ON CONFLICT (name) DO NOTHING;
