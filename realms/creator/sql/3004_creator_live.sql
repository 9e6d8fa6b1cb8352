-- Creator realm, part 4 of 10: live streaming. Owns creator.live_streams (stream key stored
-- hashed, scheduling, premium price, current and peak viewer counts) and creator.stream_access
-- (who may watch, join/leave times, watch time, engagement), with issue_stream_key(),
-- stream_id_for_key(), record_stream_join() and record_stream_leave().
-- Relies on 3001 (users), 3002 (content, require_creator_account). The stream_access ->
-- transactions foreign key is added in 3005, where transactions is created.

-- ---------------------------------------------------------------------------------------------
-- live_streams
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.live_streams (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id             uuid NOT NULL,
    content_id             uuid,
    title                  varchar(255) NOT NULL,
    description            text,
    thumbnail_url          varchar(1000),
    status                 varchar(20) NOT NULL DEFAULT 'scheduled',
    stream_key_hash        char(64),
    stream_key_created_at  timestamptz,
    is_premium             boolean NOT NULL DEFAULT false,
    price                  bigint,
    chat_enabled           boolean NOT NULL DEFAULT true,
    scheduled_at           timestamptz,
    started_at             timestamptz,
    ended_at               timestamptz,
    current_viewers        integer NOT NULL DEFAULT 0,
    peak_viewers           integer NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT live_streams_creator_id_fkey FOREIGN KEY (creator_id)
        REFERENCES creator.users (id),
    -- The post that announces or replays the stream (a content row of type live_stream).
    CONSTRAINT live_streams_content_id_fkey FOREIGN KEY (content_id)
        REFERENCES creator.content (id) ON DELETE SET NULL,
    CONSTRAINT live_streams_content_id_key UNIQUE (content_id),
    CONSTRAINT live_streams_title_not_blank CHECK (btrim(title) <> ''),
    CONSTRAINT live_streams_status_valid
        CHECK (status IN ('scheduled', 'live', 'ended', 'cancelled')),
    CONSTRAINT live_streams_stream_key_hash_key UNIQUE (stream_key_hash),
    -- sha256 of the key, lower-case hex; the key is shown once (issue_stream_key) and never
    -- stored.
    CONSTRAINT live_streams_stream_key_hash_format CHECK (stream_key_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT live_streams_price_matches_premium
        CHECK ((is_premium AND coalesce(price > 0, false)) OR (NOT is_premium AND price IS NULL)),
    CONSTRAINT live_streams_live_has_start CHECK (status <> 'live' OR started_at IS NOT NULL),
    CONSTRAINT live_streams_ended_has_times
        CHECK (status <> 'ended' OR (started_at IS NOT NULL AND ended_at IS NOT NULL)),
    CONSTRAINT live_streams_ends_after_start CHECK (ended_at >= started_at),
    CONSTRAINT live_streams_current_viewers_non_negative CHECK (current_viewers >= 0),
    CONSTRAINT live_streams_peak_at_least_current CHECK (peak_viewers >= current_viewers),
    CONSTRAINT live_streams_viewers_only_when_live CHECK (status = 'live' OR current_viewers = 0)
);

COMMENT ON COLUMN creator.live_streams.price IS 'Premium access price in minor units (cents)';

CREATE INDEX idx_live_streams_creator_id ON creator.live_streams (creator_id, created_at DESC);
-- Streams that are live or coming up (discovery, "stream starting" notifications).
CREATE INDEX idx_live_streams_upcoming ON creator.live_streams (status, scheduled_at)
    WHERE status IN ('scheduled', 'live');

CREATE TRIGGER trg_live_streams_updated_at
    BEFORE UPDATE ON creator.live_streams
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();
CREATE TRIGGER trg_live_streams_creator_account
    BEFORE INSERT OR UPDATE OF creator_id ON creator.live_streams
    FOR EACH ROW EXECUTE FUNCTION creator.require_creator_account('creator_id',
                                                                   'live_streams_creator_is_creator');

-- Viewer counts and lifecycle times: peak_viewers never falls below any current_viewers
-- written; going live stamps started_at, ending stamps ended_at (when not given) and, like a
-- cancellation, sets current_viewers to 0.
CREATE FUNCTION creator.apply_live_stream_state() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'live' AND NEW.started_at IS NULL THEN
        NEW.started_at := now();
    END IF;
    IF NEW.status = 'ended' AND NEW.ended_at IS NULL THEN
        NEW.ended_at := greatest(now(), NEW.started_at);
    END IF;
    IF NEW.status IN ('ended', 'cancelled') THEN
        NEW.current_viewers := 0;
    END IF;
    NEW.peak_viewers := greatest(NEW.peak_viewers, NEW.current_viewers);
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_live_streams_state
    BEFORE INSERT OR UPDATE ON creator.live_streams
    FOR EACH ROW EXECUTE FUNCTION creator.apply_live_stream_state();

-- issue_stream_key(stream): a new random key for broadcasting (244 random bits); its sha256
-- replaces the stored hash, so any earlier key stops working. Returns the key, the only
-- time it is ever visible; NULL when the stream does not exist.
CREATE FUNCTION creator.issue_stream_key(p_stream_id uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_key text := 'sk_' || replace(gen_random_uuid()::text, '-', '')
                        || replace(gen_random_uuid()::text, '-', '');
BEGIN
    UPDATE creator.live_streams
       SET stream_key_hash = encode(sha256(convert_to(v_key, 'UTF8')), 'hex'),
           stream_key_created_at = now()
     WHERE id = p_stream_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    RETURN v_key;
END;
$$;

-- stream_id_for_key(key): the stream a broadcaster's key belongs to (ingest authentication);
-- NULL for an unknown or replaced key.
CREATE FUNCTION creator.stream_id_for_key(p_key text) RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT id FROM creator.live_streams
     WHERE stream_key_hash = encode(sha256(convert_to(p_key, 'UTF8')), 'hex');
$$;

-- ---------------------------------------------------------------------------------------------
-- stream_access: one row per viewer and stream; how they got access, when they joined and
-- left, total watch time and engagement
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.stream_access (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    live_stream_id      uuid NOT NULL,
    user_id             uuid NOT NULL,
    access_type         varchar(20) NOT NULL DEFAULT 'free',
    transaction_id      uuid,
    first_joined_at     timestamptz,
    last_joined_at      timestamptz,
    last_left_at        timestamptz,
    join_count          integer NOT NULL DEFAULT 0,
    watch_seconds       integer NOT NULL DEFAULT 0,
    chat_messages_sent  integer NOT NULL DEFAULT 0,
    reactions_sent      integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT stream_access_live_stream_id_fkey FOREIGN KEY (live_stream_id)
        REFERENCES creator.live_streams (id) ON DELETE CASCADE,
    CONSTRAINT stream_access_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT stream_access_live_stream_id_user_id_key UNIQUE (live_stream_id, user_id),
    CONSTRAINT stream_access_access_type_valid
        CHECK (access_type IN ('free', 'paid', 'complimentary')),
    CONSTRAINT stream_access_paid_has_transaction
        CHECK ((access_type = 'paid') = (transaction_id IS NOT NULL)),
    CONSTRAINT stream_access_counters_non_negative
        CHECK (join_count >= 0 AND watch_seconds >= 0 AND chat_messages_sent >= 0
               AND reactions_sent >= 0),
    CONSTRAINT stream_access_joined_matches_join_count
        CHECK ((join_count = 0) = (first_joined_at IS NULL)
               AND (first_joined_at IS NULL) = (last_joined_at IS NULL)),
    CONSTRAINT stream_access_join_times_ordered CHECK (last_joined_at >= first_joined_at),
    CONSTRAINT stream_access_left_after_first_join CHECK (last_left_at >= first_joined_at)
);

CREATE INDEX idx_stream_access_user_id ON creator.stream_access (user_id, created_at DESC);
CREATE INDEX idx_stream_access_transaction_id ON creator.stream_access (transaction_id)
    WHERE transaction_id IS NOT NULL;

CREATE TRIGGER trg_stream_access_updated_at
    BEFORE UPDATE ON creator.stream_access
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- A premium stream is watched with paid or complimentary access only. An INSERT for a viewer
-- who already has a row is let through: it is refused by the unique key, or turned by
-- ON CONFLICT into an UPDATE of that row (record_stream_join), which keeps its access_type.
CREATE FUNCTION creator.check_stream_access() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND EXISTS (
        SELECT 1 FROM creator.stream_access
         WHERE live_stream_id = NEW.live_stream_id AND user_id = NEW.user_id
    ) THEN
        RETURN NEW;
    END IF;
    IF NEW.access_type = 'free' AND EXISTS (
        SELECT 1 FROM creator.live_streams WHERE id = NEW.live_stream_id AND is_premium
    ) THEN
        RAISE EXCEPTION 'live stream % is premium: access must be paid or complimentary',
                NEW.live_stream_id
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'stream_access_premium_requires_payment',
                  TABLE = 'stream_access', SCHEMA = 'creator';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_stream_access_premium
    BEFORE INSERT OR UPDATE OF access_type, live_stream_id ON creator.stream_access
    FOR EACH ROW EXECUTE FUNCTION creator.check_stream_access();

-- A viewer is watching while last_joined_at is set and no leave came at or after it.
-- record_stream_join(stream, user, at): starts a viewing session (creating the free access row
-- on first join: refused on a premium stream without paid access). Returns true when a session
-- started, false when the user was already watching (a second socket).
CREATE FUNCTION creator.record_stream_join(
    p_stream_id uuid, p_user_id uuid, p_at timestamptz DEFAULT now()
) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_started boolean;
BEGIN
    INSERT INTO creator.stream_access AS a
           (live_stream_id, user_id, first_joined_at, last_joined_at, join_count)
    VALUES (p_stream_id, p_user_id, p_at, p_at, 1)
    ON CONFLICT (live_stream_id, user_id) DO UPDATE
       SET first_joined_at = coalesce(a.first_joined_at, EXCLUDED.first_joined_at),
           last_joined_at = EXCLUDED.last_joined_at,
           join_count = a.join_count + 1
     WHERE a.last_joined_at IS NULL OR a.last_left_at >= a.last_joined_at
    RETURNING true INTO v_started;
    RETURN coalesce(v_started, false);
END;
$$;

-- record_stream_leave(stream, user, at): ends the viewer's session, adding its whole seconds to
-- watch_seconds. Returns false when the user was not watching.
CREATE FUNCTION creator.record_stream_leave(
    p_stream_id uuid, p_user_id uuid, p_at timestamptz DEFAULT now()
) RETURNS boolean
LANGUAGE sql AS $$
    WITH left_now AS (
        UPDATE creator.stream_access
           SET last_left_at = greatest(p_at, last_joined_at),
               watch_seconds = watch_seconds
                   + floor(extract(epoch FROM greatest(p_at, last_joined_at) - last_joined_at))::integer
         WHERE live_stream_id = p_stream_id AND user_id = p_user_id
           AND last_joined_at IS NOT NULL
           AND (last_left_at IS NULL OR last_left_at < last_joined_at)
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM left_now);
$$;

-- When a stream ends or is cancelled, every open viewing session is closed at its end time
-- (gateways that died never report their viewers' leaves).
CREATE FUNCTION creator.close_stream_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz := coalesce(NEW.ended_at, now());
BEGIN
    UPDATE creator.stream_access
       SET last_left_at = greatest(v_at, last_joined_at),
           watch_seconds = watch_seconds
               + floor(extract(epoch FROM greatest(v_at, last_joined_at) - last_joined_at))::integer
     WHERE live_stream_id = NEW.id
       AND last_joined_at IS NOT NULL
       AND (last_left_at IS NULL OR last_left_at < last_joined_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_live_streams_close_sessions
    AFTER UPDATE OF status ON creator.live_streams
    FOR EACH ROW
    WHEN (NEW.status IN ('ended', 'cancelled') AND OLD.status NOT IN ('ended', 'cancelled'))
    EXECUTE FUNCTION creator.close_stream_sessions();
