-- Notification delivery throughput (issue 19, item 3): workers claim each channel on its own,
-- in due order, as their per-channel concurrency frees up; and a provider's project-wide
-- "slow down" (FCM 429/503 with Retry-After) is written down once so that every worker stops
-- claiming that channel until it has passed. docs/notifications.md, "Retries and leases".
--
-- The outbox table belongs to the analyst realm's 0012 (which sorts before this file); a
-- database migrated without that realm has no outbox, and only the pause table is created.

DO $$
BEGIN
    IF to_regclass('gateway.notification_deliveries') IS NOT NULL THEN
        -- Claiming per channel: due pending jobs and expired leases of one channel, by due
        -- time and then id (one notify() stamps all its jobs with the same time, so the id
        -- keeps them first-in, first-out). The same index finds a channel's next due job.
        CREATE INDEX IF NOT EXISTS idx_notification_deliveries_channel_due
            ON gateway.notification_deliveries (channel, next_attempt_at, id)
            WHERE status IN ('pending', 'sending');
        -- Replaced by the index above: every claim and next-due query now names its channel,
        -- and one index less makes a 100,000-recipient notify() cheaper.
        DROP INDEX IF EXISTS gateway.idx_notification_deliveries_due;
    END IF;
END;
$$;

-- delivery_pauses: a channel (scope 'push' = the whole FCM project) that no worker may claim
-- before paused_until. Written by the worker that got the provider's answer; a later, longer
-- pause extends it, a shorter one never shortens it. Rows are kept (a handful at most) as the
-- record of the last pause.
CREATE TABLE gateway.delivery_pauses (
    scope         text PRIMARY KEY,
    paused_until  timestamptz NOT NULL,
    reason        text NOT NULL,
    set_by        text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT delivery_pauses_scope_valid CHECK (scope IN ('push', 'email', 'digest')),
    CONSTRAINT delivery_pauses_reason_length CHECK (length(reason) <= 1000)
);
