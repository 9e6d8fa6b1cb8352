-- Platform (seed 000, tables 14-16 and step 6 of its migration order): owns
-- analyst.notifications, analyst.support_tickets, analyst.moderation_flags and their indexes.
-- Relies on 0001 (analyst.update_updated_at_column) and 0002 (analyst.users).
-- Where the seed lists values with "etc." the lists below are our reading: docs/schema-notes.md.

-- ---------------------------------------------------------------------------------------------
-- notifications: email / push / in-app notifications to one user
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.notifications (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL,
    notification_type   varchar(50) NOT NULL,
    title               varchar(255),
    message             text,
    action_url          varchar(500),
    related_entity_type varchar(50),
    related_entity_id   uuid,
    send_email          boolean NOT NULL DEFAULT true,
    send_push           boolean NOT NULL DEFAULT true,
    send_in_app         boolean NOT NULL DEFAULT true,
    status              varchar(50) NOT NULL DEFAULT 'pending',
    sent_at             timestamptz,
    read_at             timestamptz,
    email_sent          boolean NOT NULL DEFAULT false,
    email_sent_at       timestamptz,
    email_opened        boolean NOT NULL DEFAULT false,
    email_opened_at     timestamptz,
    email_clicked       boolean NOT NULL DEFAULT false,
    push_sent           boolean NOT NULL DEFAULT false,
    push_sent_at        timestamptz,
    priority            varchar(20) NOT NULL DEFAULT 'medium',
    notification_group  varchar(100),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES analyst.users (id) ON DELETE CASCADE,
    -- The seed's type list ends in "etc.": any lower_snake_case name, not a closed list.
    CONSTRAINT notifications_notification_type_format
        CHECK (notification_type ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT notifications_status_valid CHECK (status IN ('pending', 'sent', 'failed', 'read')),
    CONSTRAINT notifications_priority_valid CHECK (priority IN ('low', 'medium', 'high', 'urgent'))
);

-- A user's notifications, newest first (delivery batching, inbox); also user_id's FK index.
CREATE INDEX idx_notifications_user_id ON analyst.notifications (user_id, created_at DESC);
-- Unread badge / unread list.
CREATE INDEX idx_notifications_unread ON analyst.notifications (user_id)
    WHERE read_at IS NULL;
-- Delivery workers: oldest pending first.
CREATE INDEX idx_notifications_pending ON analyst.notifications (status, created_at)
    WHERE status = 'pending';
-- Batching by group (e.g. daily_digest).
CREATE INDEX idx_notifications_notification_group
    ON analyst.notifications (notification_group, created_at)
    WHERE notification_group IS NOT NULL;

CREATE TRIGGER trg_notifications_updated_at
    BEFORE UPDATE ON analyst.notifications
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- ---------------------------------------------------------------------------------------------
-- support_tickets: user support requests
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.support_tickets (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id             uuid NOT NULL,
    subject             varchar(500) NOT NULL,
    description         text,
    ticket_type         varchar(50) NOT NULL DEFAULT 'other',
    status              varchar(50) NOT NULL DEFAULT 'open',
    priority            varchar(20) NOT NULL DEFAULT 'medium',
    assigned_to         uuid,
    assigned_at         timestamptz,
    resolution_notes    text,
    resolved_at         timestamptz,
    resolved_by         uuid,
    related_entity_type varchar(50),
    related_entity_id   uuid,
    attachments         jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_response_at    timestamptz,
    closed_at           timestamptz,

    CONSTRAINT support_tickets_user_id_fkey FOREIGN KEY (user_id) REFERENCES analyst.users (id),
    CONSTRAINT support_tickets_assigned_to_fkey FOREIGN KEY (assigned_to)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    CONSTRAINT support_tickets_resolved_by_fkey FOREIGN KEY (resolved_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    -- The seed's list ends in "etc.": this closed list is our reading.
    CONSTRAINT support_tickets_ticket_type_valid
        CHECK (ticket_type IN ('technical_issue', 'payment_issue', 'account_issue',
                               'verification_issue', 'subscription_issue', 'content_issue',
                               'other')),
    CONSTRAINT support_tickets_status_valid
        CHECK (status IN ('open', 'in_progress', 'waiting_user', 'resolved', 'closed',
                          'escalated')),
    CONSTRAINT support_tickets_priority_valid
        CHECK (priority IN ('low', 'medium', 'high', 'critical'))
);

CREATE INDEX idx_support_tickets_user_id ON analyst.support_tickets (user_id, created_at DESC);
-- Support queue: by status and priority.
CREATE INDEX idx_support_tickets_status_priority ON analyst.support_tickets (status, priority);
-- An agent's tickets; also assigned_to's FK index.
CREATE INDEX idx_support_tickets_assigned_to ON analyst.support_tickets (assigned_to)
    WHERE assigned_to IS NOT NULL;
CREATE INDEX idx_support_tickets_resolved_by ON analyst.support_tickets (resolved_by)
    WHERE resolved_by IS NOT NULL;

CREATE TRIGGER trg_support_tickets_updated_at
    BEFORE UPDATE ON analyst.support_tickets
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- ---------------------------------------------------------------------------------------------
-- moderation_flags: reports of content or accounts (polymorphic target, no FK to it)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.moderation_flags (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    reported_by         uuid,
    flagged_entity_type varchar(50) NOT NULL,
    flagged_entity_id   uuid NOT NULL,
    flag_reason         varchar(100) NOT NULL,
    flag_description    text,
    status              varchar(50) NOT NULL DEFAULT 'pending',
    priority            varchar(20) NOT NULL DEFAULT 'medium',
    reviewed_by         uuid,
    reviewed_at         timestamptz,
    resolution_notes    text,
    action_taken        varchar(100),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    -- NULL reporter: raised by the system, or the reporter's account was erased.
    CONSTRAINT moderation_flags_reported_by_fkey FOREIGN KEY (reported_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    CONSTRAINT moderation_flags_reviewed_by_fkey FOREIGN KEY (reviewed_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    CONSTRAINT moderation_flags_flagged_entity_type_valid
        CHECK (flagged_entity_type IN ('user', 'analyst', 'post', 'chat_message', 'review')),
    -- The seed's list ends in "etc.": this closed list is our reading.
    CONSTRAINT moderation_flags_flag_reason_valid
        CHECK (flag_reason IN ('spam', 'harassment', 'fraudulent_activity', 'fake_calls',
                               'inappropriate_content', 'misleading_information',
                               'impersonation', 'other')),
    CONSTRAINT moderation_flags_status_valid
        CHECK (status IN ('pending', 'under_review', 'resolved', 'dismissed', 'action_taken')),
    CONSTRAINT moderation_flags_priority_valid
        CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT moderation_flags_action_taken_valid
        CHECK (action_taken IN ('content_removed', 'user_warned', 'user_suspended',
                                'user_banned'))
);

-- Moderation queue.
CREATE INDEX idx_moderation_flags_queue
    ON analyst.moderation_flags (status, priority, created_at);
-- All flags on one entity.
CREATE INDEX idx_moderation_flags_entity
    ON analyst.moderation_flags (flagged_entity_type, flagged_entity_id);
CREATE INDEX idx_moderation_flags_reported_by ON analyst.moderation_flags (reported_by)
    WHERE reported_by IS NOT NULL;
CREATE INDEX idx_moderation_flags_reviewed_by ON analyst.moderation_flags (reviewed_by)
    WHERE reviewed_by IS NOT NULL;

CREATE TRIGGER trg_moderation_flags_updated_at
    BEFORE UPDATE ON analyst.moderation_flags
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();
