-- Creator realm, part 8 of 10: the audit trail ("Audit trail for all changes"). One trigger
-- function, write_audit_log(), attached to every table whose changes are account, content,
-- money, moderation or security events; each change writes one creator.audit_logs row with
-- the before/after values of the audited columns that changed.
-- Relies on 3001-3007.
--
-- Who and from where: the caller sets, in the transaction (set_config(..., true)),
--   creator.user_id    the acting user (also read by row-level security, 3010)
--   creator.ip_address an inet ('' or unset: none; a malformed value is dropped)
--   creator.user_agent text
-- user_id of the audit row is the user the changed row is about (the trigger's subject
-- column), else the acting user; admin_id is the acting user when they are an admin or a
-- moderator. Writes from jobs (no creator.user_id) have no admin_id.

-- write_audit_log(category, severity, subject_column, column...): AFTER row trigger.
-- Columns prefixed with '~' are secrets or personal data: only the fact of their change is
-- recorded ("[redacted]"). subject_column '-' means the row names no user. An UPDATE that
-- changes none of the columns writes nothing. SECURITY DEFINER: the trail is written even
-- when the caller may not read or write audit_logs.
CREATE FUNCTION creator.write_audit_log() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_before  jsonb;
    v_after   jsonb;
    v_old     jsonb;
    v_new     jsonb;
    v_changed text[] := '{}';
    v_arg     text;
    v_key     text;
    v_secret  boolean;
    v_actor   uuid := creator.current_user_id();
    v_admin   uuid;
    v_subject uuid;
    v_ip_text text := nullif(current_setting('creator.ip_address', true), '');
    v_ip      inet;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        v_before := to_jsonb(OLD);
        v_old := '{}';
    END IF;
    IF TG_OP <> 'DELETE' THEN
        v_after := to_jsonb(NEW);
        v_new := '{}';
    END IF;

    FOR i IN 3 .. TG_NARGS - 1 LOOP
        v_arg := TG_ARGV[i];
        v_secret := left(v_arg, 1) = '~';
        v_key := ltrim(v_arg, '~');
        IF TG_OP = 'UPDATE' AND (v_before -> v_key) IS NOT DISTINCT FROM (v_after -> v_key) THEN
            CONTINUE;
        END IF;
        v_changed := v_changed || v_key;
        IF v_old IS NOT NULL THEN
            v_old := v_old || jsonb_build_object(
                v_key, CASE WHEN v_secret THEN to_jsonb('[redacted]'::text) ELSE v_before -> v_key END);
        END IF;
        IF v_new IS NOT NULL THEN
            v_new := v_new || jsonb_build_object(
                v_key, CASE WHEN v_secret THEN to_jsonb('[redacted]'::text) ELSE v_after -> v_key END);
        END IF;
    END LOOP;
    IF TG_OP = 'UPDATE' AND cardinality(v_changed) = 0 THEN
        RETURN NULL;
    END IF;

    IF v_actor IS NOT NULL THEN
        SELECT id INTO v_admin FROM creator.users
         WHERE id = v_actor AND account_type IN ('admin', 'moderator');
    END IF;
    IF TG_ARGV[2] <> '-' THEN
        v_subject := (coalesce(v_after, v_before) ->> TG_ARGV[2])::uuid;
    END IF;
    IF v_ip_text IS NOT NULL THEN
        BEGIN
            v_ip := v_ip_text::inet;
        EXCEPTION WHEN invalid_text_representation THEN
            v_ip := NULL;
        END;
    END IF;

    INSERT INTO creator.audit_logs
           (category, action, entity_type, entity_id, user_id, admin_id, old_values,
            new_values, ip_address, user_agent, severity, description)
    VALUES (TG_ARGV[0], TG_TABLE_NAME || '.' || lower(TG_OP), TG_TABLE_NAME,
            (coalesce(v_after, v_before) ->> 'id')::uuid,
            coalesce(v_subject, CASE WHEN v_admin IS NULL THEN v_actor END), v_admin,
            v_old, v_new, v_ip, nullif(current_setting('creator.user_agent', true), ''),
            TG_ARGV[1],
            TG_TABLE_NAME || ' ' || lower(TG_OP) || ': ' || array_to_string(v_changed, ', '));
    RETURN NULL;
END;
$$;

-- Account changes (status, type, verification, pricing, deletion) and security events
-- (password or e-mail changed).
CREATE TRIGGER trg_users_audit
    AFTER INSERT OR UPDATE OR DELETE ON creator.users
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'user_account', 'medium', 'id', 'account_type', 'account_status', 'status_reason',
        'suspended_until', 'age_verified', 'email_verified', 'subscription_price', 'deleted_at');
CREATE TRIGGER trg_users_audit_security
    AFTER UPDATE OF password_hash, email ON creator.users
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'security', 'high', 'id', '~password_hash', '~email');

-- Content modifications: publication, moderation state, monetization, deletion.
CREATE TRIGGER trg_content_audit
    AFTER INSERT OR UPDATE OR DELETE ON creator.content
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'content', 'low', 'creator_id', 'status', 'moderation_status', 'is_premium', 'price',
        'is_subscriber_only', 'is_age_restricted', 'is_shadow_banned', 'content_warning',
        'deleted_at');

-- Message deletions (by the sender or a moderator); messages themselves are not audited.
CREATE TRIGGER trg_messages_audit_delete
    AFTER UPDATE OF is_deleted ON creator.messages
    FOR EACH ROW WHEN (OLD.is_deleted IS DISTINCT FROM NEW.is_deleted)
    EXECUTE FUNCTION creator.write_audit_log(
        'content', 'low', 'sender_id', 'is_deleted', 'deleted_by');

-- Live streams: lifecycle, premium pricing, and stream key changes (a security event's
-- worth, recorded redacted).
CREATE TRIGGER trg_live_streams_audit
    AFTER INSERT OR UPDATE OR DELETE ON creator.live_streams
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'content', 'low', 'creator_id', 'status', 'is_premium', 'price', '~stream_key_hash');

-- Money.
CREATE TRIGGER trg_subscriptions_audit
    AFTER INSERT OR UPDATE OR DELETE ON creator.subscriptions
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'payment', 'medium', 'subscriber_id', 'creator_id', 'subscription_type', 'status',
        'price', 'currency', 'auto_renew', 'expires_at', 'cancelled_at');
CREATE TRIGGER trg_transactions_audit
    AFTER INSERT OR UPDATE OR DELETE ON creator.transactions
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'payment', 'medium', 'user_id', 'creator_id', 'transaction_type', 'status',
        'gross_amount', 'platform_fee', 'net_amount', 'currency', 'failure_code',
        'failure_reason');

-- Moderation (administrative actions).
CREATE TRIGGER trg_content_reports_audit
    AFTER INSERT OR UPDATE OR DELETE ON creator.content_reports
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'admin', 'low', 'reported_user_id', 'target_type', 'report_type', 'priority', 'status',
        'assigned_to', 'resolved_by');
CREATE TRIGGER trg_content_moderation_actions_audit
    AFTER INSERT OR UPDATE OR DELETE ON creator.content_moderation_actions
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'admin', 'medium', '-', 'target_type', 'content_id', 'message_id', 'comment_id',
        'action', 'moderator_id', 'is_automated', 'confidence_score', 'requires_human_review',
        'reviewed_by');
CREATE TRIGGER trg_user_violations_audit
    AFTER INSERT OR UPDATE OR DELETE ON creator.user_violations
    FOR EACH ROW EXECUTE FUNCTION creator.write_audit_log(
        'admin', 'high', 'user_id', 'violation_type', 'severity', 'enforcement_action',
        'restricted_features', 'starts_at', 'ends_at', 'status');
