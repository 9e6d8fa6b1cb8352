-- The analyst realm's side of realm-neutral notifications (issue 13; the core's 0130 follows
-- this file): the gateway's notices name the realm, and what the foreign keys into
-- analyst.users and analyst.notifications did, which 0130 drops, is done by triggers.
--
-- The trigger functions are PL/pgSQL, so they may name the `realm` column that 0130 adds.

-- sb_notification and sb_notification_read payloads name the realm of the inbox table (the
-- trigger's argument), so a gateway serving several realms finds the user's sockets.
CREATE OR REPLACE FUNCTION gateway.notify_notification_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_notification',
                      '{"realm":' || to_json(TG_ARGV[0])::text || ',"user_id":"'
                      || n.user_id::text || '","id":"' || n.id::text || '"}')
       FROM new_rows n
      WHERE n.send_in_app;
    RETURN NULL;
END;
$$;

DROP TRIGGER trg_notifications_notify_gateway ON analyst.notifications;
CREATE TRIGGER trg_notifications_notify_gateway
    AFTER INSERT ON analyst.notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.notify_notification_created('analyst');

CREATE OR REPLACE FUNCTION gateway.notify_notifications_read() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_notification_read',
                      json_build_object('realm', TG_ARGV[0], 'user_id', r.user_id,
                                        'ids', CASE WHEN r.n <= 100 THEN r.ids END)::text)
       FROM (SELECT n.user_id, count(*) AS n,
                    (array_agg(n.id ORDER BY n.created_at, n.id))[1:100] AS ids
               FROM new_rows n
               JOIN old_rows o ON o.id = n.id
              WHERE o.read_at IS NULL AND n.read_at IS NOT NULL AND n.send_in_app
              GROUP BY n.user_id) r;
    RETURN NULL;
END;
$$;

DROP TRIGGER trg_notifications_notify_read ON analyst.notifications;
CREATE TRIGGER trg_notifications_notify_read
    AFTER UPDATE ON analyst.notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.notify_notifications_read('analyst');

-- A deleted notification's delivery jobs go with it (was: ON DELETE CASCADE). The same
-- function as the core's 0130 defines for its own inbox.
CREATE OR REPLACE FUNCTION gateway.forget_deliveries_of_deleted_notifications() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM gateway.notification_deliveries d
     USING old_rows o
     WHERE d.notification_id = o.id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_notifications_forget_deliveries
    AFTER DELETE ON analyst.notifications
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.forget_deliveries_of_deleted_notifications();

-- A hard-deleted user's devices, preferences and settings go (was: ON DELETE CASCADE).
CREATE OR REPLACE FUNCTION analyst.forget_notification_rows_of_deleted_users() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM gateway.push_devices d
     USING old_rows o WHERE d.realm = 'analyst' AND d.user_id = o.id::text;
    DELETE FROM gateway.notification_preferences p
     USING old_rows o WHERE p.realm = 'analyst' AND p.user_id = o.id::text;
    DELETE FROM gateway.notification_settings s
     USING old_rows o WHERE s.realm = 'analyst' AND s.user_id = o.id::text;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_users_forget_notification_rows
    AFTER DELETE ON analyst.users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.forget_notification_rows_of_deleted_users();
