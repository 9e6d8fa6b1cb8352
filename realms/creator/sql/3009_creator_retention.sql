-- Creator realm, part 9 of 10: the seed's retention policies, as functions for scheduled jobs.
--
--   | Data type        | Retention | Action                 | Function                          |
--   | Analytics events | 2 years   | Archive to cold storage| archive_analytics_events(),       |
--   |                  |           |                        | purge_exported_analytics()        |
--   | Audit logs       | 7 years   | Legal compliance       | purge_expired_audit_logs()        |
--   | System logs      | 90 days   | Delete                 | purge_system_logs()               |
--   | Deleted content  | 30 days   | Permanent deletion     | purge_deleted_content(),          |
--   |                  |           |                        | scrub_deleted_comments(),         |
--   |                  |           |                        | scrub_deleted_messages()          |
--   | User sessions    | 30 days   | Cleanup                | cleanup_user_sessions()           |
--
-- Each returns how many rows it archived, deleted or scrubbed; apply_retention_policies()
-- runs them all. Periods are measured against now(), the start of the calling transaction.
-- Relies on 3001-3008.

-- ---------------------------------------------------------------------------------------------
-- Analytics events: moved, after 2 years, into archive tables that the cold-storage export
-- job reads (rows with exported_at NULL), marks exported, and then purges.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.content_analytics_archive (
    LIKE creator.content_analytics INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    exported_at  timestamptz,
    PRIMARY KEY (id)
);
CREATE TABLE creator.user_analytics_archive (
    LIKE creator.user_analytics INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    exported_at  timestamptz,
    PRIMARY KEY (id)
);

-- The export job's queue.
CREATE INDEX idx_content_analytics_archive_unexported ON creator.content_analytics_archive
    (created_at) WHERE exported_at IS NULL;
CREATE INDEX idx_user_analytics_archive_unexported ON creator.user_analytics_archive
    (created_at) WHERE exported_at IS NULL;

-- archive_analytics_events(): content_analytics and user_analytics rows created more than
-- 2 years ago move to their archive tables. Returns one row per source table.
CREATE FUNCTION creator.archive_analytics_events()
RETURNS TABLE (source text, archived bigint)
LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        DELETE FROM creator.content_analytics
         WHERE created_at < now() - interval '2 years'
        RETURNING *
    ), stored AS (
        INSERT INTO creator.content_analytics_archive
               (id, content_id, user_id, event_type, view_duration_seconds, session_id,
                ip_address, country, region, city, device_type, browser, operating_system,
                user_agent, referrer, metadata, created_at)
        SELECT id, content_id, user_id, event_type, view_duration_seconds, session_id,
               ip_address, country, region, city, device_type, browser, operating_system,
               user_agent, referrer, metadata, created_at
          FROM moved
        RETURNING 1
    )
    SELECT 'content_analytics', count(*) INTO source, archived FROM stored;
    RETURN NEXT;

    WITH moved AS (
        DELETE FROM creator.user_analytics
         WHERE created_at < now() - interval '2 years'
        RETURNING *
    ), stored AS (
        INSERT INTO creator.user_analytics_archive
               (id, user_id, event_type, target_user_id, session_id, ip_address, country,
                region, city, device_type, browser, operating_system, user_agent, metadata,
                created_at)
        SELECT id, user_id, event_type, target_user_id, session_id, ip_address, country,
               region, city, device_type, browser, operating_system, user_agent, metadata,
               created_at
          FROM moved
        RETURNING 1
    )
    SELECT 'user_analytics', count(*) INTO source, archived FROM stored;
    RETURN NEXT;
END;
$$;

-- purge_exported_analytics(): archived events the export job has marked exported are deleted
-- from Postgres (they live on in cold storage). Returns how many.
CREATE FUNCTION creator.purge_exported_analytics() RETURNS bigint
LANGUAGE sql AS $$
    WITH a AS (DELETE FROM creator.content_analytics_archive WHERE exported_at IS NOT NULL
               RETURNING 1),
         b AS (DELETE FROM creator.user_analytics_archive WHERE exported_at IS NOT NULL
               RETURNING 1)
    SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b);
$$;

-- purge_expired_audit_logs(): audit logs older than 7 years are deleted (the only deletion
-- protect_audit_logs allows).
CREATE FUNCTION creator.purge_expired_audit_logs() RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM creator.audit_logs
                   WHERE created_at < now() - interval '7 years' RETURNING 1)
    SELECT count(*) FROM gone;
$$;

-- purge_system_logs(): system logs older than 90 days are deleted.
CREATE FUNCTION creator.purge_system_logs() RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM creator.system_logs
                   WHERE created_at < now() - interval '90 days' RETURNING 1)
    SELECT count(*) FROM gone;
$$;

-- purge_deleted_content(): content soft-deleted more than 30 days ago is deleted for good,
-- with its likes, comments and analytics events (ON DELETE CASCADE); payments, tips,
-- reports, moderation actions and streams that named it keep their rows with the reference
-- cleared (ON DELETE SET NULL).
CREATE FUNCTION creator.purge_deleted_content() RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM creator.content
                   WHERE deleted_at < now() - interval '30 days' RETURNING 1)
    SELECT count(*) FROM gone;
$$;

-- scrub_deleted_comments(): comments soft-deleted more than 30 days ago lose their body. The
-- row stays as a tombstone so the replies under it keep their thread.
CREATE FUNCTION creator.scrub_deleted_comments() RETURNS bigint
LANGUAGE sql AS $$
    WITH scrubbed AS (UPDATE creator.comments SET body = NULL
                       WHERE deleted_at < now() - interval '30 days' AND body IS NOT NULL
                      RETURNING 1)
    SELECT count(*) FROM scrubbed;
$$;

-- scrub_deleted_messages(): messages deleted more than 30 days ago lose their body,
-- attachments and preview. The row stays as a tombstone so seq stays gap-free and clients
-- resuming with `since` see the deletion.
CREATE FUNCTION creator.scrub_deleted_messages() RETURNS bigint
LANGUAGE sql AS $$
    WITH scrubbed AS (
        UPDATE creator.messages SET body = NULL, attachments = '[]', preview = NULL
         WHERE is_deleted AND deleted_at < now() - interval '30 days'
           AND (body IS NOT NULL OR attachments <> '[]'::jsonb OR preview IS NOT NULL)
        RETURNING 1
    )
    SELECT count(*) FROM scrubbed;
$$;

-- cleanup_user_sessions(): sessions without activity for 30 days (last_active_at, or
-- created_at if never used) are deleted, whether expired, revoked or not.
CREATE FUNCTION creator.cleanup_user_sessions() RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM creator.user_sessions
                   WHERE coalesce(last_active_at, created_at) < now() - interval '30 days'
                  RETURNING 1)
    SELECT count(*) FROM gone;
$$;

-- apply_retention_policies(): every policy above, one after the other, in the caller's
-- transaction. One row per policy.
CREATE FUNCTION creator.apply_retention_policies()
RETURNS TABLE (policy text, affected bigint)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT 'archive_' || a.source, a.archived
                   FROM creator.archive_analytics_events() a;
    RETURN QUERY SELECT 'purge_exported_analytics', creator.purge_exported_analytics();
    RETURN QUERY SELECT 'purge_expired_audit_logs', creator.purge_expired_audit_logs();
    RETURN QUERY SELECT 'purge_system_logs', creator.purge_system_logs();
    RETURN QUERY SELECT 'purge_deleted_content', creator.purge_deleted_content();
    RETURN QUERY SELECT 'scrub_deleted_comments', creator.scrub_deleted_comments();
    RETURN QUERY SELECT 'scrub_deleted_messages', creator.scrub_deleted_messages();
    RETURN QUERY SELECT 'cleanup_user_sessions', creator.cleanup_user_sessions();
END;
$$;
