-- SMS in the core outbox (issue 17, item 4): channel 'sms' for delivery jobs (one per
-- notification, like push and e-mail: notification_id NOT NULL), for preferences, and scope
-- 'sms' for a provider-wide pause (the provider's 429). docs/notifications.md, "SMS".
--
-- By now the tables exist whether or not the analyst realm is enabled (its 0012 creates them
-- first, otherwise 0130 does), with the same constraint names either way: only the CHECKs
-- that list channels are replaced.

ALTER TABLE gateway.notification_deliveries
    DROP CONSTRAINT IF EXISTS notification_deliveries_channel_valid;
ALTER TABLE gateway.notification_deliveries
    ADD CONSTRAINT notification_deliveries_channel_valid
    CHECK (channel IN ('push', 'email', 'sms', 'digest'));

-- Unchanged rule, restated so that this file alone says what an 'sms' row looks like.
ALTER TABLE gateway.notification_deliveries
    DROP CONSTRAINT IF EXISTS notification_deliveries_digest_shape;
ALTER TABLE gateway.notification_deliveries
    ADD CONSTRAINT notification_deliveries_digest_shape CHECK (
        CASE WHEN channel = 'digest' THEN notification_id IS NULL AND digest_date IS NOT NULL
             ELSE notification_id IS NOT NULL AND digest_date IS NULL END);

ALTER TABLE gateway.notification_preferences
    DROP CONSTRAINT IF EXISTS notification_preferences_channel_valid;
ALTER TABLE gateway.notification_preferences
    ADD CONSTRAINT notification_preferences_channel_valid
    CHECK (channel IN ('*', 'in_app', 'push', 'email', 'sms'));

ALTER TABLE gateway.delivery_pauses
    DROP CONSTRAINT IF EXISTS delivery_pauses_scope_valid;
ALTER TABLE gateway.delivery_pauses
    ADD CONSTRAINT delivery_pauses_scope_valid
    CHECK (scope IN ('push', 'email', 'sms', 'digest'));
