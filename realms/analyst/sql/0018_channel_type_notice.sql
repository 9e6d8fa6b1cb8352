-- A channel whose type changes (community, premium, support) has its members re-checked on
-- every gateway, like any other change to its gates (0010's notice, with channel_type).
CREATE OR REPLACE FUNCTION gateway.notify_channel_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_active IS DISTINCT FROM OLD.is_active
       OR NEW.is_archived IS DISTINCT FROM OLD.is_archived
       OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at
       OR NEW.require_subscription IS DISTINCT FROM OLD.require_subscription
       OR NEW.minimum_tier_required IS DISTINCT FROM OLD.minimum_tier_required
       OR NEW.channel_type IS DISTINCT FROM OLD.channel_type THEN
        PERFORM pg_notify('sb_membership', json_build_object(
            'kind', 'channel', 'channel_id', NEW.id, 'analyst_id', NEW.analyst_id)::text);
    END IF;
    RETURN NEW;
END;
$$;
