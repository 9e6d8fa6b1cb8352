-- Issue 21 item 8: analyst_profiles.monthly_revenue kept current on every subscription change,
-- in the changing statement's transaction; the monthly job (recompute_monthly_revenue) stays as
-- a reconciliation that repairs any drift.
--
-- A subscription's share of its analyst's monthly revenue is exactly the term that
-- calculate_analyst_monthly_revenue() (0003) sums for it, so the deltas below and the function
-- always agree: 0 unless status = 'active' AND deleted_at IS NULL; else its charged price
-- (final_price, else price_paid, else 0), a yearly one divided by 12 and rounded half away from
-- zero, per subscription.

CREATE OR REPLACE FUNCTION analyst.subscription_monthly_revenue(
    p_status text, p_deleted_at timestamptz, p_billing_cycle text,
    p_final_price integer, p_price_paid integer
) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
               WHEN p_status IS DISTINCT FROM 'active' OR p_deleted_at IS NOT NULL THEN 0
               WHEN p_billing_cycle = 'yearly'
                   THEN round(coalesce(p_final_price, p_price_paid, 0)::numeric / 12)::bigint
               ELSE coalesce(p_final_price, p_price_paid, 0)::bigint
           END;
$$;

-- Statement-level, with transition tables, like the other statistics triggers (0003/0004):
-- one delta per analyst per statement, profiles locked in user_id order first (the order
-- update_analyst_subscriber_counts uses too, so the two cannot deadlock each other), the
-- result kept between 0 and the column's maximum. Deltas, not a recount, so a subscription
-- change costs the same for an analyst with ten subscribers or a hundred thousand.
CREATE OR REPLACE FUNCTION analyst.update_analyst_monthly_revenue() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids   uuid[];
    v_delta bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(analyst_id ORDER BY analyst_id), array_agg(n ORDER BY analyst_id)
          INTO v_ids, v_delta
          FROM (SELECT analyst_id,
                       sum(analyst.subscription_monthly_revenue(
                               status, deleted_at, billing_cycle, final_price, price_paid)) AS n
                  FROM new_rows GROUP BY analyst_id) s
         WHERE n <> 0;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(analyst_id ORDER BY analyst_id), array_agg(n ORDER BY analyst_id)
          INTO v_ids, v_delta
          FROM (SELECT analyst_id,
                       -sum(analyst.subscription_monthly_revenue(
                                status, deleted_at, billing_cycle, final_price, price_paid)) AS n
                  FROM old_rows GROUP BY analyst_id) s
         WHERE n <> 0;
    ELSE  -- UPDATE: the new rows' shares minus the old rows' (a move between analysts too)
        SELECT array_agg(analyst_id ORDER BY analyst_id), array_agg(n ORDER BY analyst_id)
          INTO v_ids, v_delta
          FROM (SELECT analyst_id, sum(d) AS n
                  FROM (SELECT analyst_id,
                               analyst.subscription_monthly_revenue(
                                   status, deleted_at, billing_cycle, final_price, price_paid) AS d
                          FROM new_rows
                        UNION ALL
                        SELECT analyst_id,
                               -analyst.subscription_monthly_revenue(
                                   status, deleted_at, billing_cycle, final_price, price_paid)
                          FROM old_rows) changes
                 GROUP BY analyst_id) s
         WHERE n <> 0;
    END IF;

    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM analyst.analyst_profiles
     WHERE user_id = ANY (v_ids) ORDER BY user_id FOR NO KEY UPDATE;
    UPDATE analyst.analyst_profiles ap
       SET monthly_revenue = least(greatest(ap.monthly_revenue + d.n, 0), 2147483647)
      FROM unnest(v_ids, v_delta) AS d(analyst_id, n)
     WHERE ap.user_id = d.analyst_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_subscriptions_analyst_monthly_revenue_insert
    AFTER INSERT ON analyst.subscriptions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_monthly_revenue();
CREATE TRIGGER trg_subscriptions_analyst_monthly_revenue_update
    AFTER UPDATE ON analyst.subscriptions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_monthly_revenue();
CREATE TRIGGER trg_subscriptions_analyst_monthly_revenue_delete
    AFTER DELETE ON analyst.subscriptions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_monthly_revenue();

-- Profiles as they stand now (the trigger only moves them from here on).
UPDATE analyst.analyst_profiles p
   SET monthly_revenue = analyst.calculate_analyst_monthly_revenue(p.user_id)
 WHERE p.monthly_revenue <> analyst.calculate_analyst_monthly_revenue(p.user_id);
