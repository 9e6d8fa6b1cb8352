-- Realm-neutral notifications (issue 13, item 2; docs/notifications.md, "Realms"): the
-- delivery tables keyed by (realm, user id), and an in-app inbox for realms whose seed has
-- no usable notifications table.
--
-- gateway.push_devices, notification_preferences, notification_settings and
-- notification_deliveries were created by the analyst realm's 0012 with uuid user ids that
-- referenced analyst.users. When they exist (the analyst realm is enabled) they are converted
-- here: a `realm` column (existing rows: 'analyst'), user_id as text (a UUID's canonical text,
-- or decimal digits in BIGINT realms), no foreign keys into a realm's tables, and every key
-- that began with user_id beginning with (realm, user_id). When they do not exist (a database
-- migrated without the analyst realm) they are created in that shape, with what 0101 and
-- 0120 would have added. The analyst realm's 0026 keeps what its foreign keys did (a deleted
-- user's devices, preferences and settings go; a deleted notification's jobs go).
--
-- Not handled: enabling the analyst realm on a database first migrated without it (its 0012
-- would create tables that exist by then).

-- ---------------------------------------------------------------------------------------------
-- Helpers the tables need (0012 defines the same ones when the analyst realm is enabled).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION gateway.is_time_zone_name(p_name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = p_name)
$$;

CREATE OR REPLACE FUNCTION gateway.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION gateway.notify_delivery_queued() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows) THEN
        PERFORM pg_notify('sb_delivery', '');
    END IF;
    RETURN NULL;
END;
$$;

-- A deleted notification's delivery jobs go with it (what the foreign key to
-- analyst.notifications did). One statement per DELETE, whatever its size.
CREATE OR REPLACE FUNCTION gateway.forget_deliveries_of_deleted_notifications() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM gateway.notification_deliveries d
     USING old_rows o
     WHERE d.notification_id = o.id;
    RETURN NULL;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Converting the analyst realm's tables, when they exist
-- ---------------------------------------------------------------------------------------------
DO $$
BEGIN
    IF to_regclass('gateway.push_devices') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM information_schema.columns
         WHERE table_schema = 'gateway' AND table_name = 'push_devices' AND column_name = 'realm'
    ) THEN
        ALTER TABLE gateway.push_devices DROP CONSTRAINT IF EXISTS push_devices_user_id_fkey;
        ALTER TABLE gateway.push_devices ADD COLUMN realm text NOT NULL DEFAULT 'analyst';
        ALTER TABLE gateway.push_devices ALTER COLUMN realm DROP DEFAULT;
        ALTER TABLE gateway.push_devices ALTER COLUMN user_id TYPE text USING user_id::text;
        DROP INDEX IF EXISTS gateway.idx_push_devices_user_id;
    END IF;

    IF to_regclass('gateway.notification_preferences') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM information_schema.columns
         WHERE table_schema = 'gateway' AND table_name = 'notification_preferences'
           AND column_name = 'realm'
    ) THEN
        ALTER TABLE gateway.notification_preferences
            DROP CONSTRAINT IF EXISTS notification_preferences_user_id_fkey;
        ALTER TABLE gateway.notification_preferences
            DROP CONSTRAINT IF EXISTS notification_preferences_pkey;
        ALTER TABLE gateway.notification_preferences
            ADD COLUMN realm text NOT NULL DEFAULT 'analyst';
        ALTER TABLE gateway.notification_preferences ALTER COLUMN realm DROP DEFAULT;
        ALTER TABLE gateway.notification_preferences
            ALTER COLUMN user_id TYPE text USING user_id::text;
        ALTER TABLE gateway.notification_preferences
            ADD CONSTRAINT notification_preferences_pkey
            PRIMARY KEY (realm, user_id, category, channel);
    END IF;

    IF to_regclass('gateway.notification_settings') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM information_schema.columns
         WHERE table_schema = 'gateway' AND table_name = 'notification_settings'
           AND column_name = 'realm'
    ) THEN
        ALTER TABLE gateway.notification_settings
            DROP CONSTRAINT IF EXISTS notification_settings_user_id_fkey;
        ALTER TABLE gateway.notification_settings
            DROP CONSTRAINT IF EXISTS notification_settings_pkey;
        ALTER TABLE gateway.notification_settings
            ADD COLUMN realm text NOT NULL DEFAULT 'analyst';
        ALTER TABLE gateway.notification_settings ALTER COLUMN realm DROP DEFAULT;
        ALTER TABLE gateway.notification_settings
            ALTER COLUMN user_id TYPE text USING user_id::text;
        ALTER TABLE gateway.notification_settings
            ADD CONSTRAINT notification_settings_pkey PRIMARY KEY (realm, user_id);
    END IF;

    IF to_regclass('gateway.notification_deliveries') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM information_schema.columns
         WHERE table_schema = 'gateway' AND table_name = 'notification_deliveries'
           AND column_name = 'realm'
    ) THEN
        -- A job's notification may live in any realm's inbox table: no foreign key (the
        -- inboxes' delete triggers remove the jobs of a deleted notification instead).
        ALTER TABLE gateway.notification_deliveries
            DROP CONSTRAINT IF EXISTS notification_deliveries_notification_id_fkey;
        ALTER TABLE gateway.notification_deliveries
            ADD COLUMN realm text NOT NULL DEFAULT 'analyst';
        ALTER TABLE gateway.notification_deliveries ALTER COLUMN realm DROP DEFAULT;
        ALTER TABLE gateway.notification_deliveries
            ALTER COLUMN user_id TYPE text USING user_id::text;
        DROP INDEX IF EXISTS gateway.idx_notification_deliveries_digest;
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- push_devices: FCM registration tokens of a realm's user
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS gateway.push_devices (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       text NOT NULL,
    -- A token moves to whoever registers it last (a shared or resold device), in any realm.
    token         text NOT NULL,
    platform      text NOT NULL,
    app_version   text,
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    realm         text NOT NULL,

    CONSTRAINT push_devices_token_key UNIQUE (token),
    CONSTRAINT push_devices_token_length CHECK (length(token) BETWEEN 1 AND 4096),
    CONSTRAINT push_devices_platform_valid CHECK (platform IN ('android', 'ios', 'web')),
    CONSTRAINT push_devices_app_version_length CHECK (length(app_version) <= 50)
);
-- A user's devices (fan-out to every device).
CREATE INDEX IF NOT EXISTS idx_push_devices_realm_user_id
    ON gateway.push_devices (realm, user_id);

-- ---------------------------------------------------------------------------------------------
-- notification_preferences: may category X reach this user on channel Y (no row: yes)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS gateway.notification_preferences (
    user_id     text NOT NULL,
    category    text NOT NULL,
    channel     text NOT NULL,
    enabled     boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    realm       text NOT NULL,

    CONSTRAINT notification_preferences_pkey PRIMARY KEY (realm, user_id, category, channel),
    CONSTRAINT notification_preferences_category_format
        CHECK (category = '*' OR category ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT notification_preferences_channel_valid
        CHECK (channel IN ('*', 'in_app', 'push', 'email'))
);

-- ---------------------------------------------------------------------------------------------
-- notification_settings: time zone, quiet hours, digest time (no row: UTC, none, 08:00)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS gateway.notification_settings (
    user_id            text NOT NULL,
    time_zone          text NOT NULL DEFAULT 'UTC',
    quiet_hours_start  time,
    quiet_hours_end    time,
    digest_at          time NOT NULL DEFAULT '08:00',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    realm              text NOT NULL,

    CONSTRAINT notification_settings_pkey PRIMARY KEY (realm, user_id),
    CONSTRAINT notification_settings_time_zone_valid
        CHECK (gateway.is_time_zone_name(time_zone)),
    CONSTRAINT notification_settings_quiet_hours_pair
        CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)),
    CONSTRAINT notification_settings_quiet_hours_not_empty
        CHECK (quiet_hours_start IS DISTINCT FROM quiet_hours_end OR quiet_hours_start IS NULL)
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgrelid = 'gateway.notification_settings'::regclass
                      AND tgname = 'trg_notification_settings_updated_at') THEN
        CREATE TRIGGER trg_notification_settings_updated_at
            BEFORE UPDATE ON gateway.notification_settings
            FOR EACH ROW EXECUTE FUNCTION gateway.set_updated_at();
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- notification_deliveries: the outbox (0012 explains the life of a job)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS gateway.notification_deliveries (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A row of the realm's inbox table (kernel/realms.py, Realm.inbox_table); no foreign key.
    notification_id      uuid,
    -- The notification's user, copied (no foreign key: see 0012).
    user_id              text NOT NULL,
    channel              text NOT NULL,
    digest_date          date,
    status               text NOT NULL DEFAULT 'pending',
    priority             varchar(20) NOT NULL DEFAULT 'medium',
    attempts             integer NOT NULL DEFAULT 0,
    next_attempt_at      timestamptz NOT NULL DEFAULT now(),
    last_error           text,
    provider_message_id  text,
    sent_device_ids      uuid[] NOT NULL DEFAULT '{}',
    digest_items         uuid[] NOT NULL DEFAULT '{}',
    claimed_by           text,
    claimed_at           timestamptz,
    sent_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    request_id           text,
    realm                text NOT NULL,

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
        CHECK (status <> 'sending' OR (claimed_by IS NOT NULL AND claimed_at IS NOT NULL)),
    CONSTRAINT notification_deliveries_request_id_length
        CHECK (request_id IS NULL OR length(request_id) BETWEEN 1 AND 128)
);

CREATE INDEX IF NOT EXISTS idx_notification_deliveries_channel_due
    ON gateway.notification_deliveries (channel, next_attempt_at, id)
    WHERE status IN ('pending', 'sending');
-- One digest per user and local day (its idempotency key).
CREATE UNIQUE INDEX IF NOT EXISTS idx_notification_deliveries_realm_digest
    ON gateway.notification_deliveries (realm, user_id, digest_date) WHERE channel = 'digest';
CREATE INDEX IF NOT EXISTS idx_notification_deliveries_failed
    ON gateway.notification_deliveries (updated_at DESC) WHERE status = 'failed';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgrelid = 'gateway.notification_deliveries'::regclass
                      AND tgname = 'trg_notification_deliveries_updated_at') THEN
        CREATE TRIGGER trg_notification_deliveries_updated_at
            BEFORE UPDATE ON gateway.notification_deliveries
            FOR EACH ROW EXECUTE FUNCTION gateway.set_updated_at();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgrelid = 'gateway.notification_deliveries'::regclass
                      AND tgname = 'trg_notification_deliveries_notify_workers') THEN
        CREATE TRIGGER trg_notification_deliveries_notify_workers
            AFTER INSERT ON gateway.notification_deliveries
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION gateway.notify_delivery_queued();
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- notifications: the in-app inbox of every realm that declares no table of its own
-- ---------------------------------------------------------------------------------------------
-- The columns kernel/notify.py, kernel/inbox.py, kernel/tracking.py and the delivery workers
-- use on analyst.notifications, plus the realm; user_id is the canonical text of the id.
CREATE TABLE gateway.notifications (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    realm               text NOT NULL,
    user_id             text NOT NULL,
    notification_type   varchar(50) NOT NULL,
    title               varchar(255),
    message             text,
    action_url          varchar(500),
    related_entity_type varchar(50),
    related_entity_id   uuid,
    send_email          boolean NOT NULL DEFAULT true,
    send_push           boolean NOT NULL DEFAULT true,
    send_in_app         boolean NOT NULL DEFAULT true,
    status              varchar(50) NOT NULL DEFAULT 'pending',
    sent_at             timestamptz,
    read_at             timestamptz,
    email_sent          boolean NOT NULL DEFAULT false,
    email_sent_at       timestamptz,
    email_opened        boolean NOT NULL DEFAULT false,
    email_opened_at     timestamptz,
    email_clicked       boolean NOT NULL DEFAULT false,
    push_sent           boolean NOT NULL DEFAULT false,
    push_sent_at        timestamptz,
    priority            varchar(20) NOT NULL DEFAULT 'medium',
    notification_group  varchar(100),
    -- kernel/notify.py writes event_key || ':' || user_id: one notification per event and
    -- user of a realm. Unique per realm, since two realms' users may share an id's spelling.
    idempotency_key     text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT notifications_realm_idempotency_key_key UNIQUE (realm, idempotency_key),
    CONSTRAINT notifications_realm_format CHECK (realm ~ '^[a-z][a-z0-9]{1,30}$'),
    CONSTRAINT notifications_notification_type_format
        CHECK (notification_type ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT notifications_status_valid CHECK (status IN ('pending', 'sent', 'failed', 'read')),
    CONSTRAINT notifications_priority_valid
        CHECK (priority IN ('low', 'medium', 'high', 'urgent'))
);

-- A user's inbox, newest first (REST pages).
CREATE INDEX idx_gateway_notifications_user
    ON gateway.notifications (realm, user_id, created_at DESC, id DESC);
-- Unread badge, the missed notifications on connect, "read all".
CREATE INDEX idx_gateway_notifications_unread
    ON gateway.notifications (realm, user_id, created_at DESC)
    WHERE read_at IS NULL AND send_in_app;
-- The digest query: a user's e-mailable daily_digest items not yet e-mailed.
CREATE INDEX idx_gateway_notifications_digest_pending
    ON gateway.notifications (realm, user_id, created_at)
    WHERE notification_group = 'daily_digest' AND send_email AND NOT email_sent;

CREATE TRIGGER trg_gateway_notifications_updated_at
    BEFORE UPDATE ON gateway.notifications
    FOR EACH ROW EXECUTE FUNCTION gateway.set_updated_at();

CREATE TRIGGER trg_gateway_notifications_forget_deliveries
    AFTER DELETE ON gateway.notifications
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.forget_deliveries_of_deleted_notifications();

-- In-app delivery: the same sb_notification channel and payload as the analyst realm's
-- table (0012, 0026), naming the realm, so every gateway finds the user's sockets.
CREATE OR REPLACE FUNCTION gateway.notify_inbox_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_notification',
                      '{"realm":' || to_json(n.realm)::text || ',"user_id":'
                      || to_json(n.user_id)::text || ',"id":"' || n.id::text || '"}')
       FROM new_rows n
      WHERE n.send_in_app;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_gateway_notifications_notify_gateway
    AFTER INSERT ON gateway.notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.notify_inbox_created();

-- Read state on every socket (as 0015 for the analyst realm): one NOTIFY per realm and user
-- whose notifications became read, naming at most 100 ids.
CREATE OR REPLACE FUNCTION gateway.notify_inbox_read() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_notification_read',
                      json_build_object('realm', r.realm, 'user_id', r.user_id,
                                        'ids', CASE WHEN r.n <= 100 THEN r.ids END)::text)
       FROM (SELECT n.realm, n.user_id, count(*) AS n,
                    (array_agg(n.id ORDER BY n.created_at, n.id))[1:100] AS ids
               FROM new_rows n
               JOIN old_rows o ON o.id = n.id
              WHERE o.read_at IS NULL AND n.read_at IS NOT NULL AND n.send_in_app
              GROUP BY n.realm, n.user_id) r;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_gateway_notifications_notify_read
    AFTER UPDATE ON gateway.notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.notify_inbox_read();
