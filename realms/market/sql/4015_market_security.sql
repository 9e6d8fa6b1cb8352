-- Row-level security (seed 004, "Security Considerations": "Implement RLS policies for
-- multi-tenant data isolation; restrict admin access based on roles").
--
-- How a request uses it: inside its transaction the server runs
--     SET LOCAL ROLE market_app_user;
--     SELECT set_config('market.user_id', '<users.id>', true);
-- and then only sees (and may only write) what the policies below allow that user. The
-- schema's owner (migrations, jobs, trusted server code) is not subject to RLS; nothing
-- changes for connections that do not switch role. Admin access follows admin_roles through
-- market.has_admin_role() (super_admin holds every role):
--   accounting        wallets, wallet transactions, commissions, payouts, bank accounts,
--                     orders (and everything hanging off them), promo code usage;
--   role_manager      admin_roles;
--   technical_access  settings, audit_logs, analytics_events.
-- Catalog, social content, reviews and delivery zones are public to the role (SELECT only).
-- users is readable without its private columns (email, phone, password_hash, ...).
-- Money moves, status changes, chat sends and everything not granted here stay with the
-- server (owner): the role has no write access to them.

-- The role is cluster-wide: created once, tolerating the concurrent migration of another
-- database of the cluster.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'market_app_user') THEN
        BEGIN
            CREATE ROLE market_app_user NOLOGIN NOSUPERUSER NOINHERIT NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- A login that is not a superuser needs membership to SET ROLE market_app_user.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'market_app_user', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT market_app_user TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'market: cannot grant market_app_user to %; grant it by hand so the '
                          'server can SET ROLE market_app_user', current_user;
        END;
    END IF;
END;
$$;

GRANT USAGE ON SCHEMA market TO market_app_user;

-- The requesting user: the transaction-local setting market.user_id, NULL when unset.
CREATE FUNCTION market.current_user_id() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('market.user_id', true), '')::bigint;
$$;

-- Policies call has_admin_role() on admin_roles' own policy: it must read admin_roles
-- without RLS, so it runs as the owner.
ALTER FUNCTION market.has_admin_role(bigint, market.admin_role_enum)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- Is the user a participant of the chat? Owner rights, so chat_participants' own policy can
-- use it without recursing into itself.
CREATE FUNCTION market.is_chat_participant(p_chat_id bigint, p_user_id bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM market.chat_participants
                    WHERE chat_id = p_chat_id AND user_id = p_user_id);
$$;

-- ---------------------------------------------------------------------------------------------
-- Public to the role, read-only
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON market.categories, market.products, market.product_images,
    market.product_variants, market.product_attributes, market.delivery_zones,
    market.delivery_tariffs, market.flash_sales, market.flash_sale_products, market.stories,
    market.reels, market.reel_likes, market.reel_comments, market.subscriptions, market.reviews,
    market.review_images, market.review_responses, market.seller_statistics
    TO market_app_user;

GRANT SELECT (id, uuid, first_name, last_name, avatar_url, role, status, created_at)
    ON market.users TO market_app_user;

-- ---------------------------------------------------------------------------------------------
-- Own rows: sessions (see, end), addresses and notification settings (read and write), bank
-- accounts (read and write, but is_verified is the platform's to set)
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, DELETE ON market.user_sessions TO market_app_user;
GRANT SELECT, INSERT, UPDATE, DELETE ON market.user_addresses, market.notification_settings
    TO market_app_user;
GRANT SELECT, DELETE ON market.bank_accounts TO market_app_user;
GRANT INSERT (user_id, bank_name, account_holder_name, account_number, routing_number,
              is_default),
      UPDATE (bank_name, account_holder_name, account_number, routing_number, is_default,
              deleted_at)
    ON market.bank_accounts TO market_app_user;
GRANT USAGE ON SEQUENCE market.user_addresses_id_seq, market.bank_accounts_id_seq,
    market.notification_settings_id_seq TO market_app_user;

ALTER TABLE market.user_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_sessions_own ON market.user_sessions TO market_app_user
    USING (user_id = market.current_user_id())
    WITH CHECK (user_id = market.current_user_id());

ALTER TABLE market.user_addresses ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_addresses_own ON market.user_addresses TO market_app_user
    USING (user_id = market.current_user_id())
    WITH CHECK (user_id = market.current_user_id());
-- The seller and the courier of an order see its delivery address.
CREATE POLICY user_addresses_order_parties ON market.user_addresses FOR SELECT
    TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.orders o
                    WHERE o.delivery_address_id = user_addresses.id
                      AND market.current_user_id() IN (o.seller_id, o.courier_id)));

ALTER TABLE market.bank_accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY bank_accounts_own ON market.bank_accounts TO market_app_user
    USING (user_id = market.current_user_id())
    WITH CHECK (user_id = market.current_user_id());
CREATE POLICY bank_accounts_accounting ON market.bank_accounts FOR SELECT TO market_app_user
    USING (market.has_admin_role(market.current_user_id(), 'accounting'));

ALTER TABLE market.notification_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_settings_own ON market.notification_settings TO market_app_user
    USING (user_id = market.current_user_id())
    WITH CHECK (user_id = market.current_user_id());

-- Notifications: read own, mark own read/unread.
GRANT SELECT, UPDATE (is_read, read_at) ON market.notifications TO market_app_user;
ALTER TABLE market.notifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY notifications_own ON market.notifications TO market_app_user
    USING (user_id = market.current_user_id())
    WITH CHECK (user_id = market.current_user_id());

-- ---------------------------------------------------------------------------------------------
-- Admin roles: own grants; role managers manage them (super_admin grants need a super_admin)
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON market.admin_roles TO market_app_user;
GRANT USAGE ON SEQUENCE market.admin_roles_id_seq TO market_app_user;
ALTER TABLE market.admin_roles ENABLE ROW LEVEL SECURITY;
CREATE POLICY admin_roles_own ON market.admin_roles FOR SELECT TO market_app_user
    USING (user_id = market.current_user_id());
-- Only a super_admin hands out (or takes back) super_admin.
CREATE POLICY admin_roles_role_manager ON market.admin_roles TO market_app_user
    USING (market.has_admin_role(market.current_user_id(), 'role_manager')
           AND (role_type <> 'super_admin'
                OR market.has_admin_role(market.current_user_id(), 'super_admin')))
    WITH CHECK (market.has_admin_role(market.current_user_id(), 'role_manager')
                AND (role_type <> 'super_admin'
                     OR market.has_admin_role(market.current_user_id(), 'super_admin')));

-- ---------------------------------------------------------------------------------------------
-- Money: own rows read-only; accounting reads all and manages payouts
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON market.wallets, market.wallet_transactions, market.commissions,
    market.promo_code_usage TO market_app_user;
GRANT SELECT, INSERT, UPDATE ON market.payouts TO market_app_user;
GRANT USAGE ON SEQUENCE market.payouts_id_seq TO market_app_user;

ALTER TABLE market.wallets ENABLE ROW LEVEL SECURITY;
CREATE POLICY wallets_own_or_accounting ON market.wallets FOR SELECT TO market_app_user
    USING (user_id = market.current_user_id()
           OR market.has_admin_role(market.current_user_id(), 'accounting'));

ALTER TABLE market.wallet_transactions ENABLE ROW LEVEL SECURITY;
-- The wallets subquery is itself filtered by wallets' policy.
CREATE POLICY wallet_transactions_visible_wallet ON market.wallet_transactions FOR SELECT
    TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.wallets w WHERE w.id = wallet_id));

ALTER TABLE market.commissions ENABLE ROW LEVEL SECURITY;
CREATE POLICY commissions_own_or_accounting ON market.commissions FOR SELECT TO market_app_user
    USING (seller_id = market.current_user_id()
           OR market.has_admin_role(market.current_user_id(), 'accounting'));

ALTER TABLE market.payouts ENABLE ROW LEVEL SECURITY;
CREATE POLICY payouts_own ON market.payouts FOR SELECT TO market_app_user
    USING (seller_id = market.current_user_id());
CREATE POLICY payouts_accounting ON market.payouts TO market_app_user
    USING (market.has_admin_role(market.current_user_id(), 'accounting'))
    WITH CHECK (market.has_admin_role(market.current_user_id(), 'accounting'));

ALTER TABLE market.promo_code_usage ENABLE ROW LEVEL SECURITY;
CREATE POLICY promo_code_usage_own_or_accounting ON market.promo_code_usage FOR SELECT
    TO market_app_user
    USING (user_id = market.current_user_id()
           OR market.has_admin_role(market.current_user_id(), 'accounting'));

-- ---------------------------------------------------------------------------------------------
-- Orders: the buyer, the seller, the assigned courier, accounting; rows hanging off an order
-- follow the order's visibility (their subqueries on orders are filtered by its policy)
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON market.orders, market.order_items, market.order_status_history,
    market.order_tracking, market.disputes, market.dispute_messages, market.returns,
    market.return_items TO market_app_user;

ALTER TABLE market.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY orders_parties_or_accounting ON market.orders FOR SELECT TO market_app_user
    USING (market.current_user_id() IN (buyer_id, seller_id, courier_id)
           OR market.has_admin_role(market.current_user_id(), 'accounting'));

ALTER TABLE market.order_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY order_items_visible_order ON market.order_items FOR SELECT TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.orders o WHERE o.id = order_id));

ALTER TABLE market.order_status_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY order_status_history_visible_order ON market.order_status_history FOR SELECT
    TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.orders o WHERE o.id = order_id));

ALTER TABLE market.order_tracking ENABLE ROW LEVEL SECURITY;
CREATE POLICY order_tracking_visible_order ON market.order_tracking FOR SELECT
    TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.orders o WHERE o.id = order_id));

ALTER TABLE market.disputes ENABLE ROW LEVEL SECURITY;
CREATE POLICY disputes_visible_order ON market.disputes FOR SELECT TO market_app_user
    USING (opened_by = market.current_user_id()
           OR EXISTS (SELECT 1 FROM market.orders o WHERE o.id = order_id));

ALTER TABLE market.dispute_messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY dispute_messages_visible_dispute ON market.dispute_messages FOR SELECT
    TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.disputes d WHERE d.id = dispute_id));

ALTER TABLE market.returns ENABLE ROW LEVEL SECURITY;
CREATE POLICY returns_visible_order ON market.returns FOR SELECT TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.orders o WHERE o.id = order_id));

ALTER TABLE market.return_items ENABLE ROW LEVEL SECURITY;
CREATE POLICY return_items_visible_return ON market.return_items FOR SELECT TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.returns r WHERE r.id = return_id));

-- ---------------------------------------------------------------------------------------------
-- Chats: participants only
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON market.chats, market.chat_participants, market.messages, market.message_reads
    TO market_app_user;

ALTER TABLE market.chats ENABLE ROW LEVEL SECURITY;
CREATE POLICY chats_participants ON market.chats FOR SELECT TO market_app_user
    USING (market.is_chat_participant(id, market.current_user_id()));

ALTER TABLE market.chat_participants ENABLE ROW LEVEL SECURITY;
CREATE POLICY chat_participants_participants ON market.chat_participants FOR SELECT
    TO market_app_user
    USING (market.is_chat_participant(chat_id, market.current_user_id()));

ALTER TABLE market.messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY messages_participants ON market.messages FOR SELECT TO market_app_user
    USING (market.is_chat_participant(chat_id, market.current_user_id()));

ALTER TABLE market.message_reads ENABLE ROW LEVEL SECURITY;
CREATE POLICY message_reads_visible_message ON market.message_reads FOR SELECT
    TO market_app_user
    USING (EXISTS (SELECT 1 FROM market.messages m WHERE m.id = message_id));

-- ---------------------------------------------------------------------------------------------
-- Story viewers: the viewer and the story's author
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON market.story_views TO market_app_user;
ALTER TABLE market.story_views ENABLE ROW LEVEL SECURITY;
CREATE POLICY story_views_viewer_or_author ON market.story_views FOR SELECT TO market_app_user
    USING (viewer_id = market.current_user_id()
           OR EXISTS (SELECT 1 FROM market.stories s
                       WHERE s.id = story_id AND s.user_id = market.current_user_id()));

-- ---------------------------------------------------------------------------------------------
-- System: technical access
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON market.settings TO market_app_user;
GRANT USAGE ON SEQUENCE market.settings_id_seq TO market_app_user;
GRANT SELECT ON market.audit_logs, market.analytics_events TO market_app_user;

ALTER TABLE market.settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY settings_public ON market.settings FOR SELECT TO market_app_user
    USING (is_public);
CREATE POLICY settings_technical_access ON market.settings TO market_app_user
    USING (market.has_admin_role(market.current_user_id(), 'technical_access'))
    WITH CHECK (market.has_admin_role(market.current_user_id(), 'technical_access'));

ALTER TABLE market.audit_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_logs_technical_access ON market.audit_logs FOR SELECT TO market_app_user
    USING (market.has_admin_role(market.current_user_id(), 'technical_access'));

ALTER TABLE market.analytics_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY analytics_events_technical_access ON market.analytics_events FOR SELECT
    TO market_app_user
    USING (market.has_admin_role(market.current_user_id(), 'technical_access'));
