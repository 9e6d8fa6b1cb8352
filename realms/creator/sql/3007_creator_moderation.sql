-- Creator realm, part 7 of 10: moderation, notifications and logs. Owns
-- creator.content_reports, creator.content_moderation_actions (each action takes effect on its
-- target when recorded), creator.user_violations (suspensions and bans take effect on the
-- account when recorded), creator.notifications, creator.system_logs and creator.audit_logs
-- (append-only; kept 7 years), with has_feature_restriction() and lift_expired_suspensions().
-- Relies on 3001-3004. The audit triggers on the other tables are in 3008.

-- ---------------------------------------------------------------------------------------------
-- content_reports: a user's report of content, a message, a comment, a live stream or a user
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.content_reports (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reporter_id              uuid,
    target_type              varchar(20) NOT NULL,
    reported_content_id      uuid,
    reported_message_id      uuid,
    reported_comment_id      uuid,
    reported_live_stream_id  uuid,
    reported_user_id         uuid,
    report_type              varchar(30) NOT NULL,
    description              text,
    evidence                 jsonb NOT NULL DEFAULT '[]',
    priority                 varchar(10) NOT NULL DEFAULT 'medium',
    status                   varchar(20) NOT NULL DEFAULT 'pending',
    assigned_to              uuid,
    assigned_at              timestamptz,
    resolved_by              uuid,
    resolved_at              timestamptz,
    resolution_notes         text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),

    -- Reports outlive their reporter and what they are about (moderation history).
    CONSTRAINT content_reports_reporter_id_fkey FOREIGN KEY (reporter_id)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT content_reports_reported_content_id_fkey FOREIGN KEY (reported_content_id)
        REFERENCES creator.content (id) ON DELETE SET NULL,
    CONSTRAINT content_reports_reported_message_id_fkey FOREIGN KEY (reported_message_id)
        REFERENCES creator.messages (id) ON DELETE SET NULL,
    CONSTRAINT content_reports_reported_comment_id_fkey FOREIGN KEY (reported_comment_id)
        REFERENCES creator.comments (id) ON DELETE SET NULL,
    CONSTRAINT content_reports_reported_live_stream_id_fkey FOREIGN KEY (reported_live_stream_id)
        REFERENCES creator.live_streams (id) ON DELETE SET NULL,
    CONSTRAINT content_reports_reported_user_id_fkey FOREIGN KEY (reported_user_id)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT content_reports_assigned_to_fkey FOREIGN KEY (assigned_to)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT content_reports_resolved_by_fkey FOREIGN KEY (resolved_by)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT content_reports_target_type_valid
        CHECK (target_type IN ('content', 'message', 'comment', 'live_stream', 'user')),
    -- Each item column is used only by its own target type (that the target is given is
    -- checked at insert by prepare_content_report, since a purge may clear it later).
    CONSTRAINT content_reports_content_matches_target
        CHECK (reported_content_id IS NULL OR target_type = 'content'),
    CONSTRAINT content_reports_message_matches_target
        CHECK (reported_message_id IS NULL OR target_type = 'message'),
    CONSTRAINT content_reports_comment_matches_target
        CHECK (reported_comment_id IS NULL OR target_type = 'comment'),
    CONSTRAINT content_reports_live_stream_matches_target
        CHECK (reported_live_stream_id IS NULL OR target_type = 'live_stream'),
    CONSTRAINT content_reports_report_type_valid
        CHECK (report_type IN ('inappropriate_content', 'copyright_violation', 'harassment',
                               'spam', 'underage', 'non_consensual', 'violence', 'hate_speech',
                               'other')),
    CONSTRAINT content_reports_evidence_array CHECK (jsonb_typeof(evidence) = 'array'),
    CONSTRAINT content_reports_priority_valid
        CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT content_reports_status_valid
        CHECK (status IN ('pending', 'in_review', 'escalated', 'resolved', 'dismissed')),
    CONSTRAINT content_reports_not_self CHECK (reporter_id <> reported_user_id),
    CONSTRAINT content_reports_assigned_has_time
        CHECK (assigned_to IS NULL OR assigned_at IS NOT NULL),
    CONSTRAINT content_reports_closed_has_time
        CHECK (status NOT IN ('resolved', 'dismissed') OR resolved_at IS NOT NULL)
);

-- The seed's index, exactly as listed ("Moderation queries").
CREATE INDEX idx_content_reports_status ON creator.content_reports (status);
-- The open queue by priority, oldest first.
CREATE INDEX idx_content_reports_open_queue ON creator.content_reports (priority, created_at)
    WHERE status IN ('pending', 'in_review', 'escalated');
-- One open report per reporter and target: reporting again adds nothing to the queue.
CREATE UNIQUE INDEX content_reports_one_open_per_reporter ON creator.content_reports
    (reporter_id, target_type,
     coalesce(reported_content_id, reported_message_id, reported_comment_id,
              reported_live_stream_id, reported_user_id))
    WHERE status IN ('pending', 'in_review', 'escalated');
-- A user's report history ("Escalation patterns"); also reported_user_id's FK index.
CREATE INDEX idx_content_reports_reported_user_id ON creator.content_reports
    (reported_user_id, created_at DESC);
CREATE INDEX idx_content_reports_reporter_id ON creator.content_reports (reporter_id)
    WHERE reporter_id IS NOT NULL;
CREATE INDEX idx_content_reports_reported_content_id ON creator.content_reports
    (reported_content_id) WHERE reported_content_id IS NOT NULL;
CREATE INDEX idx_content_reports_reported_message_id ON creator.content_reports
    (reported_message_id) WHERE reported_message_id IS NOT NULL;
CREATE INDEX idx_content_reports_reported_comment_id ON creator.content_reports
    (reported_comment_id) WHERE reported_comment_id IS NOT NULL;
CREATE INDEX idx_content_reports_reported_live_stream_id ON creator.content_reports
    (reported_live_stream_id) WHERE reported_live_stream_id IS NOT NULL;
CREATE INDEX idx_content_reports_assigned_to ON creator.content_reports (assigned_to)
    WHERE assigned_to IS NOT NULL;
CREATE INDEX idx_content_reports_resolved_by ON creator.content_reports (resolved_by)
    WHERE resolved_by IS NOT NULL;

CREATE TRIGGER trg_content_reports_updated_at
    BEFORE UPDATE ON creator.content_reports
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- A new report names its target (by target_type), and reported_user_id is set to whoever is
-- responsible for it: the content's or stream's creator, the message's sender, the comment's
-- author (for a 'user' report, the user named).
CREATE FUNCTION creator.prepare_content_report() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.target_type = 'content' AND NEW.reported_content_id IS NULL)
       OR (NEW.target_type = 'message' AND NEW.reported_message_id IS NULL)
       OR (NEW.target_type = 'comment' AND NEW.reported_comment_id IS NULL)
       OR (NEW.target_type = 'live_stream' AND NEW.reported_live_stream_id IS NULL)
       OR (NEW.target_type = 'user' AND NEW.reported_user_id IS NULL) THEN
        RAISE EXCEPTION 'a % report must name the reported %', NEW.target_type, NEW.target_type
            USING ERRCODE = 'check_violation', CONSTRAINT = 'content_reports_target_required',
                  TABLE = 'content_reports', SCHEMA = 'creator';
    END IF;
    NEW.reported_user_id := CASE NEW.target_type
        WHEN 'content' THEN (SELECT creator_id FROM creator.content
                              WHERE id = NEW.reported_content_id)
        WHEN 'message' THEN (SELECT sender_id FROM creator.messages
                              WHERE id = NEW.reported_message_id)
        WHEN 'comment' THEN (SELECT user_id FROM creator.comments
                              WHERE id = NEW.reported_comment_id)
        WHEN 'live_stream' THEN (SELECT creator_id FROM creator.live_streams
                                  WHERE id = NEW.reported_live_stream_id)
        ELSE NEW.reported_user_id
    END;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_content_reports_prepare
    BEFORE INSERT ON creator.content_reports
    FOR EACH ROW EXECUTE FUNCTION creator.prepare_content_report();

-- ---------------------------------------------------------------------------------------------
-- content_moderation_actions: what a moderator (or an automated model) did to content, a
-- message or a comment
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.content_moderation_actions (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    report_id              uuid,
    target_type            varchar(20) NOT NULL,
    content_id             uuid,
    message_id             uuid,
    comment_id             uuid,
    action                 varchar(20) NOT NULL,
    moderator_id           uuid,
    reason                 text,
    warning_text           varchar(255),
    is_automated           boolean NOT NULL DEFAULT false,
    ai_model               varchar(100),
    confidence_score       numeric(5,4),
    requires_human_review  boolean NOT NULL DEFAULT false,
    reviewed_by            uuid,
    reviewed_at            timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT content_moderation_actions_report_id_fkey FOREIGN KEY (report_id)
        REFERENCES creator.content_reports (id) ON DELETE SET NULL,
    CONSTRAINT content_moderation_actions_content_id_fkey FOREIGN KEY (content_id)
        REFERENCES creator.content (id) ON DELETE SET NULL,
    CONSTRAINT content_moderation_actions_message_id_fkey FOREIGN KEY (message_id)
        REFERENCES creator.messages (id) ON DELETE SET NULL,
    CONSTRAINT content_moderation_actions_comment_id_fkey FOREIGN KEY (comment_id)
        REFERENCES creator.comments (id) ON DELETE SET NULL,
    -- Who acted is part of the record: a moderator with actions cannot be hard-deleted.
    CONSTRAINT content_moderation_actions_moderator_id_fkey FOREIGN KEY (moderator_id)
        REFERENCES creator.users (id),
    CONSTRAINT content_moderation_actions_reviewed_by_fkey FOREIGN KEY (reviewed_by)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT content_moderation_actions_target_type_valid
        CHECK (target_type IN ('content', 'message', 'comment')),
    CONSTRAINT content_moderation_actions_content_matches_target
        CHECK (content_id IS NULL OR target_type = 'content'),
    CONSTRAINT content_moderation_actions_message_matches_target
        CHECK (message_id IS NULL OR target_type = 'message'),
    CONSTRAINT content_moderation_actions_comment_matches_target
        CHECK (comment_id IS NULL OR target_type = 'comment'),
    CONSTRAINT content_moderation_actions_action_valid
        CHECK (action IN ('approve', 'reject', 'remove', 'flag', 'age_restrict', 'shadow_ban',
                          'require_warning')),
    -- Messages and comments can only be approved, flagged or removed.
    CONSTRAINT content_moderation_actions_action_fits_target
        CHECK (target_type = 'content' OR action IN ('approve', 'remove', 'flag')),
    -- A human action names its moderator; an automated one names none but its model and score.
    CONSTRAINT content_moderation_actions_actor
        CHECK (is_automated = (moderator_id IS NULL)),
    CONSTRAINT content_moderation_actions_automated_has_model
        CHECK (NOT is_automated OR (ai_model IS NOT NULL AND confidence_score IS NOT NULL)),
    CONSTRAINT content_moderation_actions_confidence_score_range
        CHECK (confidence_score BETWEEN 0 AND 1),
    CONSTRAINT content_moderation_actions_warning_has_text
        CHECK (action <> 'require_warning' OR warning_text IS NOT NULL),
    CONSTRAINT content_moderation_actions_reviewed_has_time
        CHECK (reviewed_by IS NULL OR reviewed_at IS NOT NULL)
);

CREATE INDEX idx_content_moderation_actions_content_id ON creator.content_moderation_actions
    (content_id, created_at DESC) WHERE content_id IS NOT NULL;
CREATE INDEX idx_content_moderation_actions_message_id ON creator.content_moderation_actions
    (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX idx_content_moderation_actions_comment_id ON creator.content_moderation_actions
    (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX idx_content_moderation_actions_report_id ON creator.content_moderation_actions
    (report_id) WHERE report_id IS NOT NULL;
CREATE INDEX idx_content_moderation_actions_moderator_id ON creator.content_moderation_actions
    (moderator_id, created_at DESC) WHERE moderator_id IS NOT NULL;
CREATE INDEX idx_content_moderation_actions_reviewed_by ON creator.content_moderation_actions
    (reviewed_by) WHERE reviewed_by IS NOT NULL;
-- "Human review escalation": automated decisions waiting for a person.
CREATE INDEX idx_content_moderation_actions_review_queue ON creator.content_moderation_actions
    (created_at) WHERE requires_human_review AND reviewed_at IS NULL;

CREATE TRIGGER trg_content_moderation_actions_updated_at
    BEFORE UPDATE ON creator.content_moderation_actions
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- apply_moderation_action(): AFTER INSERT. The action must name its target, and takes effect:
--   content: approve/reject/remove/flag -> moderation_status approved/rejected/removed/flagged;
--            age_restrict -> is_age_restricted; shadow_ban -> is_shadow_banned;
--            require_warning -> content_warning = warning_text
--   message: remove -> soft-deleted (deleted_by = the moderator); approve/flag: recorded only
--   comment: approve/flag/remove -> moderation_status; remove also soft-deletes it
CREATE FUNCTION creator.apply_moderation_action() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.target_type = 'content' AND NEW.content_id IS NULL)
       OR (NEW.target_type = 'message' AND NEW.message_id IS NULL)
       OR (NEW.target_type = 'comment' AND NEW.comment_id IS NULL) THEN
        RAISE EXCEPTION 'a moderation action on a % must name it', NEW.target_type
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'content_moderation_actions_target_required',
                  TABLE = 'content_moderation_actions', SCHEMA = 'creator';
    END IF;

    IF NEW.target_type = 'content' THEN
        UPDATE creator.content
           SET moderation_status = CASE NEW.action
                   WHEN 'approve' THEN 'approved' WHEN 'reject' THEN 'rejected'
                   WHEN 'remove' THEN 'removed' WHEN 'flag' THEN 'flagged'
                   ELSE moderation_status END,
               is_age_restricted = is_age_restricted OR NEW.action = 'age_restrict',
               is_shadow_banned = is_shadow_banned OR NEW.action = 'shadow_ban',
               content_warning = CASE WHEN NEW.action = 'require_warning'
                                      THEN NEW.warning_text ELSE content_warning END
         WHERE id = NEW.content_id;
    ELSIF NEW.target_type = 'message' AND NEW.action = 'remove' THEN
        UPDATE creator.messages
           SET is_deleted = true, deleted_at = now(), deleted_by = NEW.moderator_id
         WHERE id = NEW.message_id AND NOT is_deleted;
    ELSIF NEW.target_type = 'comment' THEN
        UPDATE creator.comments
           SET moderation_status = CASE NEW.action
                   WHEN 'approve' THEN 'approved' WHEN 'flag' THEN 'flagged' ELSE 'removed' END,
               deleted_at = CASE WHEN NEW.action = 'remove'
                                 THEN coalesce(deleted_at, now()) ELSE deleted_at END,
               deleted_by = CASE WHEN NEW.action = 'remove' AND deleted_at IS NULL
                                 THEN NEW.moderator_id ELSE deleted_by END
         WHERE id = NEW.comment_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_content_moderation_actions_apply
    AFTER INSERT ON creator.content_moderation_actions
    FOR EACH ROW EXECUTE FUNCTION creator.apply_moderation_action();

-- ---------------------------------------------------------------------------------------------
-- user_violations: a policy violation of a user and the enforcement it brought
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.user_violations (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id               uuid NOT NULL,
    violation_type        varchar(30) NOT NULL,
    severity              varchar(10) NOT NULL,
    description           text,
    evidence              jsonb NOT NULL DEFAULT '{}',
    report_id             uuid,
    moderation_action_id  uuid,
    issued_by             uuid,
    enforcement_action    varchar(30) NOT NULL,
    restricted_features   text[],
    starts_at             timestamptz NOT NULL DEFAULT now(),
    ends_at               timestamptz,
    status                varchar(20) NOT NULL DEFAULT 'active',
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT user_violations_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT user_violations_report_id_fkey FOREIGN KEY (report_id)
        REFERENCES creator.content_reports (id) ON DELETE SET NULL,
    CONSTRAINT user_violations_moderation_action_id_fkey FOREIGN KEY (moderation_action_id)
        REFERENCES creator.content_moderation_actions (id) ON DELETE SET NULL,
    -- NULL: issued automatically.
    CONSTRAINT user_violations_issued_by_fkey FOREIGN KEY (issued_by)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT user_violations_violation_type_valid
        CHECK (violation_type IN ('inappropriate_content', 'copyright_violation', 'harassment',
                                  'spam', 'underage', 'non_consensual', 'violence',
                                  'hate_speech', 'other')),
    CONSTRAINT user_violations_severity_valid
        CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT user_violations_evidence_json
        CHECK (jsonb_typeof(evidence) IN ('object', 'array')),
    CONSTRAINT user_violations_enforcement_action_valid
        CHECK (enforcement_action IN ('warning', 'temporary_suspension', 'permanent_ban',
                                      'feature_restriction')),
    -- "Action duration tracking": a temporary suspension ends, a ban does not.
    CONSTRAINT user_violations_suspension_has_end
        CHECK (enforcement_action <> 'temporary_suspension' OR ends_at IS NOT NULL),
    CONSTRAINT user_violations_ban_has_no_end
        CHECK (enforcement_action <> 'permanent_ban' OR ends_at IS NULL),
    CONSTRAINT user_violations_ends_after_start CHECK (ends_at > starts_at),
    CONSTRAINT user_violations_restricted_features_match_action
        CHECK ((enforcement_action = 'feature_restriction')
               = (restricted_features IS NOT NULL AND cardinality(restricted_features) > 0)),
    CONSTRAINT user_violations_status_valid
        CHECK (status IN ('active', 'expired', 'appealed', 'overturned'))
);

-- A user's violations, newest first ("Escalation patterns"); also user_id's FK index.
CREATE INDEX idx_user_violations_user_id ON creator.user_violations (user_id, created_at DESC);
CREATE INDEX idx_user_violations_report_id ON creator.user_violations (report_id)
    WHERE report_id IS NOT NULL;
CREATE INDEX idx_user_violations_moderation_action_id ON creator.user_violations
    (moderation_action_id) WHERE moderation_action_id IS NOT NULL;
CREATE INDEX idx_user_violations_issued_by ON creator.user_violations (issued_by)
    WHERE issued_by IS NOT NULL;
-- lift_expired_suspensions().
CREATE INDEX idx_user_violations_active_ends_at ON creator.user_violations (ends_at)
    WHERE status = 'active' AND ends_at IS NOT NULL;

CREATE TRIGGER trg_user_violations_updated_at
    BEFORE UPDATE ON creator.user_violations
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- apply_user_violation(): AFTER INSERT of an active violation. A permanent ban bans the
-- account; a temporary suspension suspends an active or suspended account until the latest
-- end of its suspensions. Never lowers an enforcement (a banned account stays banned; a
-- deactivated one is left alone). Warnings and feature restrictions leave account_status.
CREATE FUNCTION creator.apply_user_violation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.enforcement_action = 'permanent_ban' THEN
        UPDATE creator.users
           SET account_status = 'banned', suspended_until = NULL,
               status_reason = coalesce(NEW.description, NEW.violation_type)
         WHERE id = NEW.user_id AND account_status <> 'banned';
    ELSIF NEW.enforcement_action = 'temporary_suspension' AND NEW.ends_at > now() THEN
        UPDATE creator.users
           SET account_status = 'suspended',
               suspended_until = greatest(suspended_until, NEW.ends_at),
               status_reason = coalesce(NEW.description, NEW.violation_type)
         WHERE id = NEW.user_id AND account_status IN ('active', 'suspended');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_user_violations_apply
    AFTER INSERT ON creator.user_violations
    FOR EACH ROW WHEN (NEW.status = 'active')
    EXECUTE FUNCTION creator.apply_user_violation();

-- has_feature_restriction(user, feature): an active feature_restriction violation of the user,
-- in force now, lists the feature (e.g. 'messaging', 'live_streaming', 'tipping').
CREATE FUNCTION creator.has_feature_restriction(p_user_id uuid, p_feature text)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM creator.user_violations
         WHERE user_id = p_user_id AND status = 'active'
           AND enforcement_action = 'feature_restriction'
           AND p_feature = ANY (restricted_features)
           AND starts_at <= now() AND (ends_at IS NULL OR ends_at > now())
    );
$$;

-- lift_expired_suspensions(): active violations whose ends_at has passed become 'expired', and
-- suspended accounts whose suspended_until has passed become 'active' again (status_reason
-- cleared). Returns the number of accounts reinstated. For a scheduler job.
CREATE FUNCTION creator.lift_expired_suspensions() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_rows integer;
BEGIN
    UPDATE creator.user_violations SET status = 'expired'
     WHERE status = 'active' AND ends_at <= now();
    UPDATE creator.users
       SET account_status = 'active', suspended_until = NULL, status_reason = NULL
     WHERE account_status = 'suspended' AND suspended_until <= now();
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- notifications: in-app, push and e-mail notifications to one user
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.notifications (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid NOT NULL,
    notification_type    varchar(40) NOT NULL,
    title                varchar(255) NOT NULL,
    body                 text,
    actor_id             uuid,
    related_entity_type  varchar(30),
    related_entity_id    uuid,
    data                 jsonb NOT NULL DEFAULT '{}',
    send_in_app          boolean NOT NULL DEFAULT true,
    send_push            boolean NOT NULL DEFAULT false,
    send_email           boolean NOT NULL DEFAULT false,
    push_sent_at         timestamptz,
    email_sent_at        timestamptz,
    read_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    -- The user whose act it reports (never the tipper of an anonymous tip).
    CONSTRAINT notifications_actor_id_fkey FOREIGN KEY (actor_id)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT notifications_notification_type_valid
        CHECK (notification_type IN ('new_subscriber', 'content_like', 'content_comment',
                                     'new_message', 'premium_message_purchased', 'tip_received',
                                     'stream_starting', 'new_content', 'content_approved',
                                     'content_removed', 'moderation_action',
                                     'system_announcement')),
    CONSTRAINT notifications_title_not_blank CHECK (btrim(title) <> ''),
    CONSTRAINT notifications_data_object CHECK (jsonb_typeof(data) = 'object'),
    CONSTRAINT notifications_some_channel CHECK (send_in_app OR send_push OR send_email),
    CONSTRAINT notifications_push_sent_only_if_requested
        CHECK (push_sent_at IS NULL OR send_push),
    CONSTRAINT notifications_email_sent_only_if_requested
        CHECK (email_sent_at IS NULL OR send_email)
);

-- A user's inbox, newest first; also user_id's FK index.
CREATE INDEX idx_notifications_user_id ON creator.notifications (user_id, created_at DESC);
-- Unread badge.
CREATE INDEX idx_notifications_unread ON creator.notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX idx_notifications_actor_id ON creator.notifications (actor_id)
    WHERE actor_id IS NOT NULL;

CREATE TRIGGER trg_notifications_updated_at
    BEFORE UPDATE ON creator.notifications
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- system_logs: technical logs for debugging and monitoring, kept 90 days
-- (purge_system_logs(), 3009)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.system_logs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    level        varchar(10) NOT NULL,
    message      text NOT NULL,
    service      varchar(100) NOT NULL,
    component    varchar(100),
    stack_trace  text,
    request_id   varchar(100),
    session_id   varchar(100),
    user_id      uuid,
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT system_logs_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT system_logs_level_valid
        CHECK (level IN ('debug', 'info', 'warning', 'error', 'critical')),
    CONSTRAINT system_logs_metadata_object CHECK (jsonb_typeof(metadata) = 'object')
);

CREATE INDEX idx_system_logs_created_at ON creator.system_logs (created_at DESC);
CREATE INDEX idx_system_logs_problems ON creator.system_logs (level, created_at DESC)
    WHERE level IN ('error', 'critical');
CREATE INDEX idx_system_logs_service ON creator.system_logs (service, component, created_at DESC);
CREATE INDEX idx_system_logs_request_id ON creator.system_logs (request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX idx_system_logs_user_id ON creator.system_logs (user_id)
    WHERE user_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- audit_logs: who changed what, before and after; append-only, kept 7 years
-- (purge_expired_audit_logs(), 3009). user_id and admin_id are plain uuids, not foreign keys:
-- the trail must outlive (and not block) the erasure of the users it names.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.audit_logs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    category     varchar(20) NOT NULL,
    action       varchar(100) NOT NULL,
    entity_type  varchar(50),
    entity_id    uuid,
    user_id      uuid,
    admin_id     uuid,
    old_values   jsonb,
    new_values   jsonb,
    ip_address   inet,
    user_agent   text,
    severity     varchar(10) NOT NULL DEFAULT 'low',
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT audit_logs_category_valid
        CHECK (category IN ('user_account', 'content', 'payment', 'admin', 'security')),
    CONSTRAINT audit_logs_action_not_blank CHECK (btrim(action) <> ''),
    CONSTRAINT audit_logs_severity_valid CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT audit_logs_old_values_object CHECK (jsonb_typeof(old_values) = 'object'),
    CONSTRAINT audit_logs_new_values_object CHECK (jsonb_typeof(new_values) = 'object')
);

-- The seed's index, exactly as listed.
CREATE INDEX idx_audit_logs_created_at ON creator.audit_logs (created_at DESC);
CREATE INDEX idx_audit_logs_user_id ON creator.audit_logs (user_id, created_at DESC)
    WHERE user_id IS NOT NULL;
CREATE INDEX idx_audit_logs_admin_id ON creator.audit_logs (admin_id, created_at DESC)
    WHERE admin_id IS NOT NULL;
CREATE INDEX idx_audit_logs_entity ON creator.audit_logs (entity_type, entity_id, created_at DESC);

-- Append-only: no UPDATE, no TRUNCATE, and a DELETE only of rows older than 7 years.
CREATE FUNCTION creator.protect_audit_logs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.created_at >= now() - interval '7 years' THEN
            RAISE EXCEPTION 'audit log % is kept 7 years', OLD.id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'audit_logs_retained_7_years',
                      TABLE = 'audit_logs', SCHEMA = 'creator';
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit logs are append-only (% refused)', TG_OP
        USING ERRCODE = 'check_violation', CONSTRAINT = 'audit_logs_append_only',
              TABLE = 'audit_logs', SCHEMA = 'creator';
END;
$$;

CREATE TRIGGER trg_audit_logs_protect
    BEFORE UPDATE OR DELETE ON creator.audit_logs
    FOR EACH ROW EXECUTE FUNCTION creator.protect_audit_logs();
CREATE TRIGGER trg_audit_logs_no_truncate
    BEFORE TRUNCATE ON creator.audit_logs
    FOR EACH STATEMENT EXECUTE FUNCTION creator.protect_audit_logs();
