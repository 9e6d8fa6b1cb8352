-- Creator realm, part 10 of 10: database row-level security (seed: "Database row-level
-- security") on the tables that hold one user's private data.
--
-- Policies apply to roles that neither own the tables nor are superusers: a request runs as
-- such a role (SET LOCAL ROLE ...) after set_config('creator.user_id', <user id>, true); with
-- no user set it sees none of these rows. The migration owner (and a superuser) bypasses
-- them, as the trusted gateway and workers do. Admins and moderators ("staff") see every row
-- of the moderation-relevant tables. Each policy is FOR ALL: a row a user may not see, they
-- may not write either.
-- Relies on 3001-3009.

-- current_user_is_staff(): the user in creator.user_id is an admin or a moderator.
CREATE FUNCTION creator.current_user_is_staff() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM creator.users
                    WHERE id = creator.current_user_id()
                      AND account_type IN ('admin', 'moderator') AND deleted_at IS NULL);
$$;

-- is_anonymous_tip_payment(transaction): the transaction pays an anonymous tip. SECURITY
-- DEFINER so the transactions policy sees tips the caller may not.
CREATE FUNCTION creator.is_anonymous_tip_payment(p_transaction_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM creator.tips
                    WHERE transaction_id = p_transaction_id AND is_anonymous);
$$;

ALTER TABLE creator.conversations ENABLE ROW LEVEL SECURITY;
CREATE POLICY conversations_parties ON creator.conversations
    USING (creator_id = creator.current_user_id() OR fan_id = creator.current_user_id()
           OR creator.current_user_is_staff())
    WITH CHECK (creator_id = creator.current_user_id() OR fan_id = creator.current_user_id()
                OR creator.current_user_is_staff());

ALTER TABLE creator.messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY messages_parties ON creator.messages
    USING (EXISTS (SELECT 1 FROM creator.conversations c
                    WHERE c.id = conversation_id
                      AND creator.current_user_id() IN (c.creator_id, c.fan_id))
           OR creator.current_user_is_staff())
    WITH CHECK (EXISTS (SELECT 1 FROM creator.conversations c
                         WHERE c.id = conversation_id
                           AND creator.current_user_id() IN (c.creator_id, c.fan_id))
                OR creator.current_user_is_staff());

-- The payer, and the creator paid, except for an anonymous tip's payment: the creator learns of
-- those through creator.tips_received, which hides the tipper.
ALTER TABLE creator.transactions ENABLE ROW LEVEL SECURITY;
CREATE POLICY transactions_parties ON creator.transactions
    USING (user_id = creator.current_user_id()
           OR (creator_id = creator.current_user_id()
               AND NOT creator.is_anonymous_tip_payment(id))
           OR creator.current_user_is_staff())
    WITH CHECK (user_id = creator.current_user_id()
                OR (creator_id = creator.current_user_id()
                    AND NOT creator.is_anonymous_tip_payment(id))
                OR creator.current_user_is_staff());

ALTER TABLE creator.tips ENABLE ROW LEVEL SECURITY;
CREATE POLICY tips_parties ON creator.tips
    USING (tipper_id = creator.current_user_id()
           OR (creator_id = creator.current_user_id() AND NOT is_anonymous)
           OR creator.current_user_is_staff())
    WITH CHECK (tipper_id = creator.current_user_id()
                OR (creator_id = creator.current_user_id() AND NOT is_anonymous)
                OR creator.current_user_is_staff());

ALTER TABLE creator.subscriptions ENABLE ROW LEVEL SECURITY;
CREATE POLICY subscriptions_parties ON creator.subscriptions
    USING (subscriber_id = creator.current_user_id() OR creator_id = creator.current_user_id()
           OR creator.current_user_is_staff())
    WITH CHECK (subscriber_id = creator.current_user_id()
                OR creator_id = creator.current_user_id() OR creator.current_user_is_staff());

ALTER TABLE creator.stream_access ENABLE ROW LEVEL SECURITY;
CREATE POLICY stream_access_viewer_or_streamer ON creator.stream_access
    USING (user_id = creator.current_user_id()
           OR EXISTS (SELECT 1 FROM creator.live_streams s
                       WHERE s.id = live_stream_id AND s.creator_id = creator.current_user_id())
           OR creator.current_user_is_staff())
    WITH CHECK (user_id = creator.current_user_id()
                OR EXISTS (SELECT 1 FROM creator.live_streams s
                            WHERE s.id = live_stream_id
                              AND s.creator_id = creator.current_user_id())
                OR creator.current_user_is_staff());

ALTER TABLE creator.revenue_analytics ENABLE ROW LEVEL SECURITY;
CREATE POLICY revenue_analytics_own ON creator.revenue_analytics
    USING (creator_id = creator.current_user_id() OR creator.current_user_is_staff())
    WITH CHECK (creator_id = creator.current_user_id() OR creator.current_user_is_staff());

-- Only the user themselves, not staff.
ALTER TABLE creator.notifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY notifications_own ON creator.notifications
    USING (user_id = creator.current_user_id())
    WITH CHECK (user_id = creator.current_user_id());

ALTER TABLE creator.user_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_sessions_own ON creator.user_sessions
    USING (user_id = creator.current_user_id())
    WITH CHECK (user_id = creator.current_user_id());

ALTER TABLE creator.user_violations ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_violations_own ON creator.user_violations
    USING (user_id = creator.current_user_id() OR creator.current_user_is_staff())
    WITH CHECK (creator.current_user_is_staff());

ALTER TABLE creator.content_reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY content_reports_reporter ON creator.content_reports
    USING (reporter_id = creator.current_user_id() OR creator.current_user_is_staff())
    WITH CHECK (reporter_id = creator.current_user_id() OR creator.current_user_is_staff());

-- Staff only.
ALTER TABLE creator.audit_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_logs_staff ON creator.audit_logs
    USING (creator.current_user_is_staff())
    WITH CHECK (creator.current_user_is_staff());

ALTER TABLE creator.system_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY system_logs_staff ON creator.system_logs
    USING (creator.current_user_is_staff())
    WITH CHECK (creator.current_user_is_staff());
