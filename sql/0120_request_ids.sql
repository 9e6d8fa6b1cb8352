-- Request ids on delivery jobs (issue 20, item 6; docs/operations.md, "Request ids"): the
-- X-Request-Id of the api request whose notify() queued a push, e-mail or digest job, so the
-- worker's delivery can be tied back to the request that caused it. NULL for jobs queued
-- outside a request (scheduled jobs, the gateway, scripts).
--
-- The outbox table belongs to the analyst realm's 0012 (which sorts before this file); a
-- database migrated without that realm has no outbox, and nothing is done.

DO $$
BEGIN
    IF to_regclass('gateway.notification_deliveries') IS NOT NULL THEN
        -- Nullable without a default: adding it rewrites nothing, whatever the table's size.
        ALTER TABLE gateway.notification_deliveries
            ADD COLUMN IF NOT EXISTS request_id text;
        -- The api only passes on ids of 1-128 safe characters (kernel/request_context.py).
        ALTER TABLE gateway.notification_deliveries
            ADD CONSTRAINT notification_deliveries_request_id_length
            CHECK (request_id IS NULL OR length(request_id) BETWEEN 1 AND 128) NOT VALID;
    END IF;
END;
$$;
