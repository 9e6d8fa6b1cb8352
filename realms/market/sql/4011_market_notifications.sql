-- Notifications (seed 004, section 8): market.notifications, notification_settings, and
-- market.notification_channel_enabled(), the settings' email/push/SMS x category decision.

-- ---------------------------------------------------------------------------------------------
-- notifications
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.notifications (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL,
    type            market.notification_type_enum NOT NULL,
    title           varchar(255) NOT NULL,
    content         text NOT NULL,
    data            jsonb,
    reference_type  varchar(50),
    reference_id    bigint,
    is_read         boolean NOT NULL DEFAULT false,
    read_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE CASCADE,
    CONSTRAINT notifications_data_object CHECK (jsonb_typeof(data) = 'object'),
    CONSTRAINT notifications_reference_paired
        CHECK ((reference_type IS NULL) = (reference_id IS NULL))
);

CREATE INDEX idx_notifications_user_id ON market.notifications (user_id);
CREATE INDEX idx_notifications_type ON market.notifications (type);
CREATE INDEX idx_notifications_read ON market.notifications (user_id, is_read);
CREATE INDEX idx_notifications_created ON market.notifications (created_at DESC);

CREATE TRIGGER trg_notifications_updated_at
    BEFORE UPDATE ON market.notifications
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- Marking read stamps read_at (unless the caller gave one); marking unread clears it.
CREATE FUNCTION market.stamp_notification_read() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_read AND NEW.read_at IS NULL THEN
        NEW.read_at := now();
    ELSIF NOT NEW.is_read THEN
        NEW.read_at := NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_notifications_read_at
    BEFORE INSERT OR UPDATE OF is_read, read_at ON market.notifications
    FOR EACH ROW EXECUTE FUNCTION market.stamp_notification_read();

-- ---------------------------------------------------------------------------------------------
-- notification_settings: one row per user
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.notification_settings (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL,
    email_enabled  boolean NOT NULL DEFAULT true,
    push_enabled   boolean NOT NULL DEFAULT true,
    sms_enabled    boolean NOT NULL DEFAULT false,
    order_updates  boolean NOT NULL DEFAULT true,
    promotions     boolean NOT NULL DEFAULT true,
    messages       boolean NOT NULL DEFAULT true,
    reviews        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT notification_settings_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE CASCADE
);

CREATE UNIQUE INDEX idx_notification_settings_user_id
    ON market.notification_settings (user_id);

CREATE TRIGGER trg_notification_settings_updated_at
    BEFORE UPDATE ON market.notification_settings
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- May a notification of this type go to this user over this channel ('email', 'push',
-- 'sms')? The channel's switch AND the type's category switch: order -> order_updates,
-- promotion -> promotions, message -> messages, review -> reviews; system and payment have no
-- category switch (only the channel's). A user without a settings row has the column
-- defaults (email and push on, SMS off, every category on). An unknown channel raises 22023.
CREATE FUNCTION market.notification_channel_enabled(
    p_user_id bigint, p_type market.notification_type_enum, p_channel text
) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    s market.notification_settings;
BEGIN
    IF p_channel IS NULL OR p_channel NOT IN ('email', 'push', 'sms') THEN
        RAISE EXCEPTION 'unknown notification channel %', p_channel
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO s FROM market.notification_settings WHERE user_id = p_user_id;
    IF NOT FOUND THEN
        s.email_enabled := true; s.push_enabled := true; s.sms_enabled := false;
        s.order_updates := true; s.promotions := true; s.messages := true; s.reviews := true;
    END IF;
    RETURN CASE p_channel
               WHEN 'email' THEN s.email_enabled
               WHEN 'push' THEN s.push_enabled
               ELSE s.sms_enabled
           END
       AND CASE p_type
               WHEN 'order' THEN s.order_updates
               WHEN 'promotion' THEN s.promotions
               WHEN 'message' THEN s.messages
               WHEN 'review' THEN s.reviews
               ELSE true
           END;
END;
$$;
