-- Realms: gateway rows are keyed by (channel, user id) where the channel name is the realm's
-- own (`community:<id>`, `<realm>.<kind>:<id>`) and the user id is text, so that users of any
-- realm (UUID ids, or BIGINT ids in seed 004) have presence and read positions. The tables
-- were created with the analyst realm (0010); they move to the core's sql/ in a later step.
ALTER TABLE gateway.live_members ALTER COLUMN user_id TYPE text USING user_id::text;
ALTER TABLE gateway.channel_reads ALTER COLUMN user_id TYPE text USING user_id::text;

-- Membership notices name their realm, so a gateway serving several realms finds the user.
CREATE OR REPLACE FUNCTION gateway.notify_subscription_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status = 'active' THEN
            PERFORM pg_notify('sb_membership', json_build_object(
                'kind', 'subscription', 'realm', 'analyst', 'user_id', OLD.user_id,
                'analyst_id', OLD.analyst_id)::text);
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status = 'active' AND (NEW.status <> 'active' OR NEW.deleted_at IS NOT NULL
                                  OR NEW.tier_id IS DISTINCT FROM OLD.tier_id) THEN
        PERFORM pg_notify('sb_membership', json_build_object(
            'kind', 'subscription', 'realm', 'analyst', 'user_id', NEW.user_id,
            'analyst_id', NEW.analyst_id)::text);
    END IF;
    RETURN NEW;
END;
$$;
