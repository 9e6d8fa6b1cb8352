-- Data retention (seed 004, "Data Retention Policies"), as functions a scheduled job calls.
-- Each takes the moment to measure from (default now()) so a job, and a test, can say "as of".
--   Hard deletes:  expired stories 90 days after they expired (24 h + 90 days after posting),
--                  analytics events after 1 year, audit logs after 2 years.
--   Expiry:        stories past expires_at stop being active.
--   Archival:      candidates only (completed orders older than 2 years, users inactive for
--                  3 years); moving them to cold storage is the job's business.

-- Stories whose expires_at has passed: is_active = false. Returns how many were switched off.
CREATE FUNCTION market.deactivate_expired_stories(p_as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql AS $$
    WITH done AS (
        UPDATE market.stories SET is_active = false
         WHERE is_active AND expires_at <= p_as_of
        RETURNING 1)
    SELECT count(*)::integer FROM done;
$$;

-- Hard-deletes stories that expired more than 90 days before p_as_of (their views go with
-- them). Returns the number of stories deleted.
CREATE FUNCTION market.purge_expired_stories(p_as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM market.stories WHERE expires_at < p_as_of - interval '90 days'
        RETURNING 1)
    SELECT count(*)::integer FROM gone;
$$;

-- Hard-deletes analytics events older than 1 year. Returns the number deleted.
CREATE FUNCTION market.purge_old_analytics_events(p_as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM market.analytics_events WHERE created_at < p_as_of - interval '1 year'
        RETURNING 1)
    SELECT count(*)::integer FROM gone;
$$;

-- Hard-deletes audit logs older than 2 years. Returns the number deleted.
CREATE FUNCTION market.purge_old_audit_logs(p_as_of timestamptz DEFAULT now())
RETURNS integer
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM market.audit_logs WHERE created_at < p_as_of - interval '2 years'
        RETURNING 1)
    SELECT count(*)::integer FROM gone;
$$;

-- All three hard-delete policies in one call: one row per policy with its count.
CREATE FUNCTION market.apply_retention(p_as_of timestamptz DEFAULT now())
RETURNS TABLE (policy text, deleted integer)
LANGUAGE plpgsql AS $$
BEGIN
    policy := 'expired_stories';
    deleted := market.purge_expired_stories(p_as_of);
    RETURN NEXT;
    policy := 'analytics_events';
    deleted := market.purge_old_analytics_events(p_as_of);
    RETURN NEXT;
    policy := 'audit_logs';
    deleted := market.purge_old_audit_logs(p_as_of);
    RETURN NEXT;
END;
$$;

-- Archival candidates: completed orders (status delivered, cancelled or refunded) whose last
-- status change (order_status_history) is more than 2 years before p_as_of.
CREATE FUNCTION market.orders_due_for_archival(p_as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT o.id
      FROM market.orders o
      JOIN LATERAL (SELECT max(h.created_at) AS finished_at
                      FROM market.order_status_history h WHERE h.order_id = o.id) h ON true
     WHERE o.status IN ('delivered', 'cancelled', 'refunded')
       AND coalesce(h.finished_at, o.updated_at) < p_as_of - interval '2 years'
     ORDER BY o.id;
$$;

-- Archival candidates: users with no login (or, never logged in, no account activity) for
-- more than 3 years before p_as_of.
CREATE FUNCTION market.users_due_for_archival(p_as_of timestamptz DEFAULT now())
RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT u.id
      FROM market.users u
     WHERE coalesce(u.last_login_at, u.created_at) < p_as_of - interval '3 years'
     ORDER BY u.id;
$$;
