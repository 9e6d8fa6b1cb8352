-- Creator realm, part 2 of 10: content, subscriptions and the social tables (follows, likes,
-- comments), the creator-account rule shared by every table whose row belongs to a creator,
-- and the job functions publish_scheduled_content(), expire_subscriptions().
-- Relies on 3001 (creator.users, creator.set_updated_at).

-- ---------------------------------------------------------------------------------------------
-- require_creator_account(column, constraint): BEFORE INSERT/UPDATE row trigger; the user
-- named by NEW.<column> must have account_type 'creator'. Raises check_violation naming
-- <constraint> (so callers see it like a CHECK). A later change of the user's account type
-- does not touch rows already written.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION creator.require_creator_account() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_user_id uuid := (to_jsonb(NEW) ->> TG_ARGV[0])::uuid;
BEGIN
    -- An unknown id is left to the column's foreign key.
    IF EXISTS (SELECT 1 FROM creator.users WHERE id = v_user_id AND account_type <> 'creator')
    THEN
        RAISE EXCEPTION '%.% must be a user with account_type creator', TG_TABLE_NAME, TG_ARGV[0]
            USING ERRCODE = 'check_violation', CONSTRAINT = TG_ARGV[1],
                  TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
    END IF;
    RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- content: posts of every media type, with monetization, scheduling, warnings and moderation
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.content (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id          uuid NOT NULL,
    content_type        varchar(20) NOT NULL,
    title               varchar(255),
    body                text,
    media_url           varchar(1000),
    thumbnail_url       varchar(1000),
    media_metadata      jsonb NOT NULL DEFAULT '{}',
    status              varchar(20) NOT NULL DEFAULT 'draft',
    moderation_status   varchar(20) NOT NULL DEFAULT 'pending',
    is_subscriber_only  boolean NOT NULL DEFAULT false,
    is_premium          boolean NOT NULL DEFAULT false,
    price               bigint,
    scheduled_at        timestamptz,
    published_at        timestamptz,
    content_warning     varchar(255),
    is_age_restricted   boolean NOT NULL DEFAULT false,
    is_shadow_banned    boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at          timestamptz,

    CONSTRAINT content_creator_id_fkey FOREIGN KEY (creator_id) REFERENCES creator.users (id),
    CONSTRAINT content_content_type_valid
        CHECK (content_type IN ('image', 'video', 'audio', 'text', 'live_stream')),
    CONSTRAINT content_status_valid
        CHECK (status IN ('draft', 'scheduled', 'published', 'archived')),
    CONSTRAINT content_moderation_status_valid
        CHECK (moderation_status IN ('pending', 'approved', 'rejected', 'flagged', 'removed')),
    -- "Premium content with individual pricing": a premium post has a price above zero, and
    -- only a premium post has a price.
    CONSTRAINT content_price_matches_premium
        CHECK ((is_premium AND coalesce(price > 0, false)) OR (NOT is_premium AND price IS NULL)),
    CONSTRAINT content_scheduled_has_time CHECK (status <> 'scheduled' OR scheduled_at IS NOT NULL),
    CONSTRAINT content_published_has_time CHECK (status <> 'published' OR published_at IS NOT NULL),
    -- Beyond drafts, a text post has a body and a media post has its media.
    CONSTRAINT content_text_has_body
        CHECK (status = 'draft' OR content_type <> 'text' OR body IS NOT NULL),
    CONSTRAINT content_media_has_url
        CHECK (status = 'draft' OR content_type NOT IN ('image', 'video', 'audio')
               OR media_url IS NOT NULL),
    CONSTRAINT content_media_metadata_object CHECK (jsonb_typeof(media_metadata) = 'object'),
    CONSTRAINT content_content_warning_not_blank CHECK (btrim(content_warning) <> '')
);

COMMENT ON COLUMN creator.content.price IS 'Pay-per-view price in minor units (cents)';

-- The seed's indexes, exactly as listed ("Content queries").
CREATE INDEX idx_content_creator ON creator.content (creator_id);
CREATE INDEX idx_content_created_at ON creator.content (created_at DESC);
-- A creator's feed, paginated by created_at ("Content Feeds").
CREATE INDEX idx_content_creator_feed ON creator.content (creator_id, created_at DESC)
    WHERE deleted_at IS NULL;
-- publish_scheduled_content().
CREATE INDEX idx_content_scheduled ON creator.content (scheduled_at)
    WHERE status = 'scheduled' AND deleted_at IS NULL;
-- Moderation queue.
CREATE INDEX idx_content_moderation_queue ON creator.content (created_at)
    WHERE moderation_status IN ('pending', 'flagged') AND deleted_at IS NULL;
-- purge_deleted_content() (3009).
CREATE INDEX idx_content_deleted_at ON creator.content (deleted_at)
    WHERE deleted_at IS NOT NULL;

CREATE TRIGGER trg_content_updated_at
    BEFORE UPDATE ON creator.content
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();
CREATE TRIGGER trg_content_creator_account
    BEFORE INSERT OR UPDATE OF creator_id ON creator.content
    FOR EACH ROW EXECUTE FUNCTION creator.require_creator_account('creator_id',
                                                                   'content_creator_is_creator');

-- publish_scheduled_content(): scheduled, non-deleted posts whose scheduled_at has come are
-- published at their scheduled time. Returns how many. For a scheduler job.
CREATE FUNCTION creator.publish_scheduled_content() RETURNS integer
LANGUAGE sql AS $$
    WITH published AS (
        UPDATE creator.content
           SET status = 'published', published_at = scheduled_at
         WHERE status = 'scheduled' AND scheduled_at <= now() AND deleted_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer FROM published;
$$;

-- ---------------------------------------------------------------------------------------------
-- subscriptions: a fan's recurring (monthly, yearly) or lifetime access to a creator
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.subscriptions (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subscriber_id         uuid NOT NULL,
    creator_id            uuid NOT NULL,
    subscription_type     varchar(20) NOT NULL,
    status                varchar(20) NOT NULL DEFAULT 'pending',
    price                 bigint NOT NULL,
    currency              char(3) NOT NULL DEFAULT 'USD',
    auto_renew            boolean NOT NULL DEFAULT true,
    started_at            timestamptz,
    current_period_start  timestamptz,
    expires_at            timestamptz,
    cancelled_at          timestamptz,
    cancellation_reason   text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT subscriptions_subscriber_id_fkey FOREIGN KEY (subscriber_id)
        REFERENCES creator.users (id),
    CONSTRAINT subscriptions_creator_id_fkey FOREIGN KEY (creator_id)
        REFERENCES creator.users (id),
    CONSTRAINT subscriptions_subscription_type_valid
        CHECK (subscription_type IN ('monthly', 'yearly', 'lifetime')),
    CONSTRAINT subscriptions_status_valid
        CHECK (status IN ('active', 'cancelled', 'expired', 'pending', 'failed')),
    CONSTRAINT subscriptions_price_non_negative CHECK (price >= 0),
    CONSTRAINT subscriptions_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT subscriptions_not_self CHECK (subscriber_id <> creator_id),
    -- "lifetime: One-time payment for permanent access": no end, nothing to renew.
    CONSTRAINT subscriptions_lifetime_never_expires
        CHECK (subscription_type <> 'lifetime' OR (expires_at IS NULL AND NOT auto_renew)),
    -- A monthly or yearly subscription that was ever paid has a period end.
    CONSTRAINT subscriptions_recurring_has_expiry
        CHECK (subscription_type = 'lifetime' OR status IN ('pending', 'failed')
               OR expires_at IS NOT NULL),
    CONSTRAINT subscriptions_started_has_time
        CHECK (status IN ('pending', 'failed') OR started_at IS NOT NULL),
    CONSTRAINT subscriptions_expires_after_start CHECK (expires_at > started_at),
    -- "cancelled: Cancelled but active until period end".
    CONSTRAINT subscriptions_cancelled_has_time
        CHECK (status <> 'cancelled' OR cancelled_at IS NOT NULL)
);

COMMENT ON COLUMN creator.subscriptions.price IS
    'Price per period (the whole price for lifetime) in minor units (cents)';

-- At most one subscription per fan and creator that gives access or is being paid for.
CREATE UNIQUE INDEX subscriptions_one_current_per_pair ON creator.subscriptions
    (subscriber_id, creator_id) WHERE status IN ('pending', 'active', 'cancelled');
CREATE INDEX idx_subscriptions_subscriber_id ON creator.subscriptions (subscriber_id, status);
CREATE INDEX idx_subscriptions_creator_id ON creator.subscriptions (creator_id, status);
-- expire_subscriptions() and the renewal job.
CREATE INDEX idx_subscriptions_expires_at ON creator.subscriptions (expires_at)
    WHERE status IN ('active', 'cancelled');

CREATE TRIGGER trg_subscriptions_updated_at
    BEFORE UPDATE ON creator.subscriptions
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();
CREATE TRIGGER trg_subscriptions_creator_account
    BEFORE INSERT OR UPDATE OF creator_id ON creator.subscriptions
    FOR EACH ROW EXECUTE FUNCTION creator.require_creator_account('creator_id',
                                                                   'subscriptions_creator_is_creator');

-- has_active_subscription(fan, creator): the fan has access now: an active or cancelled
-- subscription whose period has not ended (lifetime: no end).
CREATE FUNCTION creator.has_active_subscription(p_subscriber_id uuid, p_creator_id uuid)
RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM creator.subscriptions
         WHERE subscriber_id = p_subscriber_id AND creator_id = p_creator_id
           AND status IN ('active', 'cancelled')
           AND (expires_at IS NULL OR expires_at > now())
    );
$$;

-- expire_subscriptions(): active or cancelled subscriptions whose period has ended become
-- 'expired'. Returns how many. For a scheduler job (after the renewal job has run).
CREATE FUNCTION creator.expire_subscriptions() RETURNS integer
LANGUAGE sql AS $$
    WITH expired AS (
        UPDATE creator.subscriptions
           SET status = 'expired'
         WHERE status IN ('active', 'cancelled') AND expires_at <= now()
        RETURNING 1
    )
    SELECT count(*)::integer FROM expired;
$$;

-- ---------------------------------------------------------------------------------------------
-- follows: a user follows a creator, with notification preferences; an unfollow keeps the
-- row with unfollowed_at set, a re-follow clears it
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.follows (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    follower_id            uuid NOT NULL,
    following_id           uuid NOT NULL,
    notify_on_new_content  boolean NOT NULL DEFAULT true,
    notify_on_live         boolean NOT NULL DEFAULT true,
    unfollowed_at          timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT follows_follower_id_fkey FOREIGN KEY (follower_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT follows_following_id_fkey FOREIGN KEY (following_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT follows_follower_id_following_id_key UNIQUE (follower_id, following_id),
    CONSTRAINT follows_not_self CHECK (follower_id <> following_id)
);

-- A creator's followers, newest first ("Creator discovery"); also following_id's FK index.
CREATE INDEX idx_follows_following_id ON creator.follows (following_id, created_at DESC);

CREATE TRIGGER trg_follows_updated_at
    BEFORE UPDATE ON creator.follows
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- likes: one per user and content; an unlike deletes the row (content_analytics keeps the
-- like/unlike events)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.likes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL,
    content_id  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT likes_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES creator.users (id) ON DELETE CASCADE,
    CONSTRAINT likes_content_id_fkey FOREIGN KEY (content_id)
        REFERENCES creator.content (id) ON DELETE CASCADE,
    CONSTRAINT likes_user_id_content_id_key UNIQUE (user_id, content_id)
);

CREATE INDEX idx_likes_content_id ON creator.likes (content_id);

-- ---------------------------------------------------------------------------------------------
-- comments: threaded comments on content, with moderation and the creator's own comments and
-- pins ranked first
-- ---------------------------------------------------------------------------------------------
CREATE TABLE creator.comments (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    content_id         uuid NOT NULL,
    user_id            uuid NOT NULL,
    parent_comment_id  uuid,
    body               text,
    is_by_creator      boolean NOT NULL DEFAULT false,
    is_pinned          boolean NOT NULL DEFAULT false,
    moderation_status  varchar(20) NOT NULL DEFAULT 'approved',
    edited_at          timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    deleted_by         uuid,

    CONSTRAINT comments_content_id_fkey FOREIGN KEY (content_id)
        REFERENCES creator.content (id) ON DELETE CASCADE,
    CONSTRAINT comments_user_id_fkey FOREIGN KEY (user_id) REFERENCES creator.users (id),
    CONSTRAINT comments_id_content_id_key UNIQUE (id, content_id),
    -- A reply is on the same content as its parent; it goes with a hard-deleted parent.
    CONSTRAINT comments_parent_comment_id_fkey FOREIGN KEY (parent_comment_id, content_id)
        REFERENCES creator.comments (id, content_id) ON DELETE CASCADE,
    CONSTRAINT comments_deleted_by_fkey FOREIGN KEY (deleted_by)
        REFERENCES creator.users (id) ON DELETE SET NULL,
    CONSTRAINT comments_not_own_parent CHECK (parent_comment_id <> id),
    -- 1-2000 characters; only a deleted comment may have lost its body (scrub_deleted_comments).
    CONSTRAINT comments_body_length
        CHECK (coalesce(char_length(body) BETWEEN 1 AND 2000, deleted_at IS NOT NULL)),
    CONSTRAINT comments_moderation_status_valid
        CHECK (moderation_status IN ('approved', 'flagged', 'removed'))
);

-- A content's comments in display order (pinned, then the creator's, then newest); also
-- content_id's FK index.
CREATE INDEX idx_comments_content_id ON creator.comments
    (content_id, is_pinned DESC, is_by_creator DESC, created_at DESC);
CREATE INDEX idx_comments_user_id ON creator.comments (user_id, created_at DESC);
CREATE INDEX idx_comments_parent_comment_id ON creator.comments (parent_comment_id)
    WHERE parent_comment_id IS NOT NULL;
CREATE INDEX idx_comments_deleted_by ON creator.comments (deleted_by)
    WHERE deleted_by IS NOT NULL;
CREATE INDEX idx_comments_deleted_at ON creator.comments (deleted_at)
    WHERE deleted_at IS NOT NULL;

CREATE TRIGGER trg_comments_updated_at
    BEFORE UPDATE ON creator.comments
    FOR EACH ROW EXECUTE FUNCTION creator.set_updated_at();

-- is_by_creator is derived, never written by callers: the comment's author is the creator
-- of the content it is on.
CREATE FUNCTION creator.set_comment_is_by_creator() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.is_by_creator := EXISTS (
        SELECT 1 FROM creator.content WHERE id = NEW.content_id AND creator_id = NEW.user_id
    );
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_comments_is_by_creator
    BEFORE INSERT OR UPDATE OF user_id, content_id, is_by_creator ON creator.comments
    FOR EACH ROW EXECUTE FUNCTION creator.set_comment_is_by_creator();
