-- Moderation acts live (issue 21, item 6; issue 18, item 5). Whatever path changes the data
-- (the gateway, a moderator's REST call, a job, psql), every gateway hears it at once:
--   * an account that stops being usable (deactivated, suspended, banned, soft-deleted or
--     deleted) loses its sockets on every gateway (close 4004);
--   * a chat message that becomes deleted disappears on every socket (a `deleted` event).
CREATE OR REPLACE FUNCTION gateway.notify_account_disabled() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_user uuid;
    v_reason text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_user := OLD.id;
        v_reason := 'account deleted';
    ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        v_user := NEW.id;
        v_reason := 'account deleted';
    ELSIF OLD.is_active AND NOT NEW.is_active THEN
        v_user := NEW.id;
        v_reason := 'account deactivated';
    ELSE
        RETURN NEW;
    END IF;
    PERFORM pg_notify('sb_membership', json_build_object(
        'kind', 'account', 'realm', 'analyst', 'user_id', v_user, 'reason', v_reason)::text);
    RETURN coalesce(NEW, OLD);
END;
$$;

CREATE TRIGGER trg_users_notify_gateway
    AFTER UPDATE OF is_active, deleted_at OR DELETE ON analyst.users
    FOR EACH ROW EXECUTE FUNCTION gateway.notify_account_disabled();

CREATE OR REPLACE FUNCTION gateway.notify_chat_message_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sb_server', json_build_object(
        'op', 'event', 'kind', 'deleted', 'channel', 'community:' || NEW.channel_id,
        'id', NEW.id, 'by', NEW.deleted_by, 'reason', NEW.deletion_reason,
        'seq', NEW.seq)::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_chat_messages_notify_deleted
    AFTER UPDATE OF is_deleted ON analyst.chat_messages
    FOR EACH ROW WHEN (NEW.is_deleted AND NOT OLD.is_deleted)
    EXECUTE FUNCTION gateway.notify_chat_message_deleted();
