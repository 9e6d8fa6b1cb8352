-- Notification delivery (DESIGN.md section 5): an idempotency key on analyst.notifications,
-- the delivery outbox (push, e-mail and daily digest jobs claimed by workers), push devices,
-- per-user preferences and settings (time zone, quiet hours, digest time), and the NOTIFYs
-- that wake the gateway (sb_notification: in-app) and the workers (sb_delivery: outbox).
-- docs/notifications.md describes how these are used.

-- ---------------------------------------------------------------------------------------------
-- analyst.notifications: one notification per (event, user), whoever retries the event
-- ---------------------------------------------------------------------------------------------
-- kernel/notify.py writes event_key || ':' || user_id; rows written by other paths may leave it
-- NULL (a UNIQUE constraint allows any number of NULLs).
ALTER TABLE analyst.notifications ADD COLUMN idempotency_key text;
ALTER TABLE analyst.notifications
    ADD CONSTRAINT notifications_idempotency_key_key UNIQUE (idempotency_key);

-- An archive made LIKE analyst.notifications (0011, when present) must keep its columns in
-- step, or moving rows into it fails. Appended last in both, so the order still matches.
DO $$
BEGIN
    IF to_regclass('analyst.notifications_archive') IS NOT NULL THEN
        ALTER TABLE analyst.notifications_archive ADD COLUMN IF NOT EXISTS idempotency_key text;
    END IF;
END;
$$;

-- In-app delivery: every gateway process LISTENs and writes a `notification` frame to the
-- user's open sockets. One NOTIFY per row keeps the payload to two ids (about 90 bytes), so a
-- fan-out to 100,000 users queues about 9 MB, well inside Postgres' 8 GB notify queue. A
-- statement-level trigger costs one function call per INSERT, not one per row.
CREATE OR REPLACE FUNCTION gateway.notify_notification_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_notification',
                      '{"user_id":"' || n.user_id::text || '","id":"' || n.id::text || '"}')
       FROM new_rows n
      WHERE n.send_in_app;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_notifications_notify_gateway
    AFTER INSERT ON analyst.notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.notify_notification_created();

-- ---------------------------------------------------------------------------------------------
-- notification_settings: a user's time zone, quiet hours and digest time (no row: UTC, none)
-- ---------------------------------------------------------------------------------------------
-- Full IANA names only (as in pg_timezone_names): the workers compute quiet hours with
-- Python's zoneinfo, which does not know Postgres' abbreviations and POSIX offsets.
CREATE OR REPLACE FUNCTION gateway.is_time_zone_name(p_name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_name)
$$;

CREATE TABLE gateway.notification_settings (
    user_id            uuid PRIMARY KEY REFERENCES analyst.users (id) ON DELETE CASCADE,
    time_zone          text NOT NULL DEFAULT 'UTC',
    -- Local wall-clock window in which push and e-mail wait (never 'urgent' ones). A window
    -- with start > end spans midnight (22:00-07:00).
    quiet_hours_start  time,
    quiet_hours_end    time,
    -- When the daily digest of the previous local day goes out.
    digest_at          time NOT NULL DEFAULT '08:00',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT notification_settings_time_zone_valid
        CHECK (gateway.is_time_zone_name(time_zone)),
    CONSTRAINT notification_settings_quiet_hours_pair
        CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)),
    CONSTRAINT notification_settings_quiet_hours_not_empty
        CHECK (quiet_hours_start IS DISTINCT FROM quiet_hours_end OR quiet_hours_start IS NULL)
);

CREATE TRIGGER trg_notification_settings_updated_at
    BEFORE UPDATE ON gateway.notification_settings
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- ---------------------------------------------------------------------------------------------
-- notification_preferences: may category X reach this user on channel Y (no row: yes)
-- ---------------------------------------------------------------------------------------------
-- category is a notification_type, '*' = every category; channel '*' = every channel. The
-- most specific row wins: (category, channel), then (category, '*'), then ('*', channel),
-- then ('*', '*').
CREATE TABLE gateway.notification_preferences (
    user_id     uuid NOT NULL REFERENCES analyst.users (id) ON DELETE CASCADE,
    category    text NOT NULL,
    channel     text NOT NULL,
    enabled     boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),

    PRIMARY KEY (user_id, category, channel),
    CONSTRAINT notification_preferences_category_format
        CHECK (category = '*' OR category ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT notification_preferences_channel_valid
        CHECK (channel IN ('*', 'in_app', 'push', 'email'))
);

-- ---------------------------------------------------------------------------------------------
-- push_devices: FCM registration tokens; a token FCM calls dead is deleted by the worker
-- ---------------------------------------------------------------------------------------------
CREATE TABLE gateway.push_devices (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES analyst.users (id) ON DELETE CASCADE,
    -- A token moves to whoever registers it last (a shared or resold device).
    token         text NOT NULL,
    platform      text NOT NULL,
    app_version   text,
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT push_devices_token_key UNIQUE (token),
    CONSTRAINT push_devices_token_length CHECK (length(token) BETWEEN 1 AND 4096),
    CONSTRAINT push_devices_platform_valid CHECK (platform IN ('android', 'ios', 'web')),
    CONSTRAINT push_devices_app_version_length CHECK (length(app_version) <= 50)
);

-- A user's devices (fan-out to every device; also user_id's FK index).
CREATE INDEX idx_push_devices_user_id ON gateway.push_devices (user_id);

-- ---------------------------------------------------------------------------------------------
-- notification_deliveries: the outbox. One job per notification and channel ('push',
-- 'email'), plus one 'digest' job per user and local day for notification_group
-- 'daily_digest' (those items are e-mailed together, never one by one).
-- ---------------------------------------------------------------------------------------------
-- Life of a job: pending -> sending (claimed, under a lease) -> sent | failed | skipped, or
-- back to pending with a later next_attempt_at (retry, or held by quiet hours). While a job is
-- 'sending', next_attempt_at is the end of its lease: a worker that dies mid-send leaves the
-- job to be claimed again once that passes, so one index serves due jobs and expired leases.
CREATE TABLE gateway.notification_deliveries (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id      uuid REFERENCES analyst.notifications (id) ON DELETE CASCADE,
    -- The notification's user, copied (no FK: a check per row would cost a tenth of a
    -- 100,000-recipient notify(); a digest job of a hard-deleted user is skipped).
    user_id              uuid NOT NULL,
    channel              text NOT NULL,
    -- digest jobs: the user's local day whose items the e-mail lists.
    digest_date          date,
    status               text NOT NULL DEFAULT 'pending',
    -- Copied from the notification so quiet hours need no join ('urgent' is never held).
    priority             varchar(20) NOT NULL DEFAULT 'medium',
    attempts             integer NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    last_error           text,
    provider_message_id  text,
    -- push: devices already sent to (a retry skips them). digest: the notifications listed.
    sent_device_ids      uuid[] NOT NULL DEFAULT '{}',
    digest_items         uuid[] NOT NULL DEFAULT '{}',
    claimed_by           text,
    claimed_at           timestamptz,
    sent_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),

    -- The idempotency key: one job per notification and channel (digests: see below). The
    -- workers send it on as '<notification id>:<channel>' (e-mail Message-ID, push collapse
    -- key), so a send retried after a lost reply replaces rather than adds where it can.
    CONSTRAINT notification_deliveries_notification_channel_key
        UNIQUE (notification_id, channel),
    CONSTRAINT notification_deliveries_channel_valid
        CHECK (channel IN ('push', 'email', 'digest')),
    CONSTRAINT notification_deliveries_status_valid
        CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    CONSTRAINT notification_deliveries_priority_valid
        CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    CONSTRAINT notification_deliveries_attempts_non_negative CHECK (attempts >= 0),
    CONSTRAINT notification_deliveries_digest_shape CHECK (
        CASE WHEN channel = 'digest' THEN notification_id IS NULL AND digest_date IS NOT NULL
             ELSE notification_id IS NOT NULL AND digest_date IS NULL END),
    CONSTRAINT notification_deliveries_claim_shape
        CHECK (status <> 'sending' OR (claimed_by IS NOT NULL AND claimed_at IS NOT NULL))
);

-- Claiming: due pending jobs and expired leases, oldest first (FOR UPDATE SKIP LOCKED).
CREATE INDEX idx_notification_deliveries_due
    ON gateway.notification_deliveries (next_attempt_at)
    WHERE status IN ('pending', 'sending');
-- One digest per user and local day (its idempotency key; also a user's digests).
CREATE UNIQUE INDEX idx_notification_deliveries_digest
    ON gateway.notification_deliveries (user_id, digest_date) WHERE channel = 'digest';
-- Failures to look at.
CREATE INDEX idx_notification_deliveries_failed
    ON gateway.notification_deliveries (updated_at DESC) WHERE status = 'failed';
-- The digest query: a user's e-mailable daily_digest items not yet e-mailed.
CREATE INDEX idx_notifications_digest_pending
    ON analyst.notifications (user_id, created_at)
    WHERE notification_group = 'daily_digest' AND send_email AND NOT email_sent;

CREATE TRIGGER trg_notification_deliveries_updated_at
    BEFORE UPDATE ON gateway.notification_deliveries
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- Wake the workers once per inserting statement (not per row); Postgres folds identical
-- payloads of one transaction into one notification.
CREATE OR REPLACE FUNCTION gateway.notify_delivery_queued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM pg_notify('sb_delivery', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_notification_deliveries_notify_workers
    AFTER INSERT ON gateway.notification_deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.notify_delivery_queued();
