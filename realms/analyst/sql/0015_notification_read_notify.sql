-- Read state on every socket (issue 5, item 2): when notifications become read (the REST
-- inbox, the gateway's `read_notifications` op, any other UPDATE), every gateway process
-- hears one NOTIFY per user on sb_notification_read and tells that user's open sockets.
--
-- Statement-level with transition tables: a "read all" of 5,000 rows is one NOTIFY, not
-- 5,000. The payload names at most 100 ids (NOTIFY payloads must stay under 8,000 bytes);
-- above that it carries "ids":null and clients refetch. A column list (UPDATE OF read_at)
-- cannot be combined with transition tables, so the function compares old and new itself.
CREATE OR REPLACE FUNCTION gateway.notify_notifications_read() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_notification_read',
                      json_build_object('user_id', r.user_id,
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

CREATE TRIGGER trg_notifications_notify_read
    AFTER UPDATE ON analyst.notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.notify_notifications_read();
