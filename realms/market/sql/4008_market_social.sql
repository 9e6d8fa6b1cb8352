-- Social features (seed 004, section 5): market.stories, story_views, reels, reel_likes,
-- reel_comments, subscriptions; the counters stories.view_count, reels.like_count and
-- reels.comment_count kept by market.maintain_counter().

-- Keeps a counter on a parent row equal to the number of child rows that count, by deltas.
-- Installed as AFTER INSERT / UPDATE / DELETE ... FOR EACH STATEMENT triggers with transition
-- tables new_rows / old_rows, so a bulk insert updates each parent once. Arguments:
--   TG_ARGV[0] parent table (in schema market), [1] the child's column naming the parent,
--   [2] the parent's counter column, [3] SQL condition a child row must meet to count.
-- Parents are locked in id order (no deadlock between concurrent statements); counters are
-- clamped at 0.
CREATE FUNCTION market.maintain_counter() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_parent  text := TG_ARGV[0];
    v_fk      text := TG_ARGV[1];
    v_counter text := TG_ARGV[2];
    v_counts  text := TG_ARGV[3];
    v_rows    text;
    v_delta   text;
BEGIN
    v_rows := CASE TG_OP
        WHEN 'INSERT' THEN format('SELECT %I AS k, 1 AS d FROM new_rows WHERE %s',
                                  v_fk, v_counts)
        WHEN 'DELETE' THEN format('SELECT %I AS k, -1 AS d FROM old_rows WHERE %s',
                                  v_fk, v_counts)
        ELSE format('SELECT %I AS k, 1 AS d FROM new_rows WHERE %s'
                    ' UNION ALL SELECT %I, -1 FROM old_rows WHERE %s',
                    v_fk, v_counts, v_fk, v_counts)
    END;
    v_delta := format('SELECT k, sum(d) AS d FROM (%s) r GROUP BY k HAVING sum(d) <> 0', v_rows);
    EXECUTE format('SELECT 1 FROM market.%I t WHERE t.id IN (SELECT k FROM (%s) x)'
                   ' ORDER BY t.id FOR NO KEY UPDATE', v_parent, v_delta);
    EXECUTE format('UPDATE market.%I t SET %I = greatest(t.%I + x.d, 0) FROM (%s) x'
                   ' WHERE t.id = x.k', v_parent, v_counter, v_counter, v_delta);
    RETURN NULL;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- stories: 24-hour stories
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.stories (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL,
    type           market.story_type_enum NOT NULL,
    media_url      text NOT NULL,
    thumbnail_url  text,
    duration       integer NOT NULL DEFAULT 5,
    caption        text,
    view_count     integer NOT NULL DEFAULT 0,
    is_active      boolean NOT NULL DEFAULT true,
    -- "Expiration time (24h)".
    expires_at     timestamptz NOT NULL DEFAULT (now() + interval '24 hours'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,

    CONSTRAINT stories_user_id_fkey FOREIGN KEY (user_id) REFERENCES market.users (id),
    CONSTRAINT stories_duration_positive CHECK (duration > 0),
    CONSTRAINT stories_view_count_non_negative CHECK (view_count >= 0),
    CONSTRAINT stories_expires_after_created CHECK (expires_at > created_at)
);

CREATE INDEX idx_stories_user_id ON market.stories (user_id);
CREATE INDEX idx_stories_active ON market.stories (is_active, expires_at);
CREATE INDEX idx_stories_created ON market.stories (created_at DESC);
-- purge_expired_stories() (4014).
CREATE INDEX idx_stories_expires_at ON market.stories (expires_at);

CREATE TRIGGER trg_stories_updated_at
    BEFORE UPDATE ON market.stories
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- story_views: one row per story and viewer
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.story_views (
    id         bigserial PRIMARY KEY,
    story_id   bigint NOT NULL,
    viewer_id  bigint NOT NULL,
    viewed_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT story_views_story_id_fkey FOREIGN KEY (story_id)
        REFERENCES market.stories (id) ON DELETE CASCADE,
    CONSTRAINT story_views_viewer_id_fkey FOREIGN KEY (viewer_id)
        REFERENCES market.users (id) ON DELETE CASCADE
);

CREATE INDEX idx_story_views_story_id ON market.story_views (story_id);
CREATE INDEX idx_story_views_viewer_id ON market.story_views (viewer_id);
CREATE UNIQUE INDEX idx_story_views_unique ON market.story_views (story_id, viewer_id);

-- stories.view_count = the number of distinct viewers (story_views rows).
CREATE TRIGGER trg_story_views_count_insert
    AFTER INSERT ON market.story_views REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('stories', 'story_id', 'view_count', 'true');
CREATE TRIGGER trg_story_views_count_update
    AFTER UPDATE ON market.story_views REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('stories', 'story_id', 'view_count', 'true');
CREATE TRIGGER trg_story_views_count_delete
    AFTER DELETE ON market.story_views REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('stories', 'story_id', 'view_count', 'true');

-- ---------------------------------------------------------------------------------------------
-- reels: short videos
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.reels (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL,
    video_url      text NOT NULL,
    thumbnail_url  text NOT NULL,
    title          varchar(255),
    description    text,
    duration       integer NOT NULL,
    view_count     integer NOT NULL DEFAULT 0,
    like_count     integer NOT NULL DEFAULT 0,
    comment_count  integer NOT NULL DEFAULT 0,
    share_count    integer NOT NULL DEFAULT 0,
    is_active      boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,

    CONSTRAINT reels_user_id_fkey FOREIGN KEY (user_id) REFERENCES market.users (id),
    CONSTRAINT reels_duration_positive CHECK (duration > 0),
    CONSTRAINT reels_counters_non_negative
        CHECK (view_count >= 0 AND like_count >= 0 AND comment_count >= 0 AND share_count >= 0)
);

CREATE INDEX idx_reels_user_id ON market.reels (user_id);
CREATE INDEX idx_reels_active ON market.reels (is_active);
CREATE INDEX idx_reels_created ON market.reels (created_at DESC);
CREATE INDEX idx_reels_popular ON market.reels (view_count DESC, like_count DESC);

CREATE TRIGGER trg_reels_updated_at
    BEFORE UPDATE ON market.reels
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- reel_likes
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.reel_likes (
    id          bigserial PRIMARY KEY,
    reel_id     bigint NOT NULL,
    user_id     bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT reel_likes_reel_id_fkey FOREIGN KEY (reel_id)
        REFERENCES market.reels (id) ON DELETE CASCADE,
    CONSTRAINT reel_likes_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES market.users (id) ON DELETE CASCADE
);

CREATE INDEX idx_reel_likes_reel_id ON market.reel_likes (reel_id);
CREATE INDEX idx_reel_likes_user_id ON market.reel_likes (user_id);
CREATE UNIQUE INDEX idx_reel_likes_unique ON market.reel_likes (reel_id, user_id);

-- reels.like_count = the number of reel_likes rows.
CREATE TRIGGER trg_reel_likes_count_insert
    AFTER INSERT ON market.reel_likes REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('reels', 'reel_id', 'like_count', 'true');
CREATE TRIGGER trg_reel_likes_count_update
    AFTER UPDATE ON market.reel_likes REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('reels', 'reel_id', 'like_count', 'true');
CREATE TRIGGER trg_reel_likes_count_delete
    AFTER DELETE ON market.reel_likes REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('reels', 'reel_id', 'like_count', 'true');

-- ---------------------------------------------------------------------------------------------
-- reel_comments: comments and replies (parent_id)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.reel_comments (
    id          bigserial PRIMARY KEY,
    reel_id     bigint NOT NULL,
    user_id     bigint NOT NULL,
    parent_id   bigint,
    content     text NOT NULL,
    like_count  integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,

    CONSTRAINT reel_comments_reel_id_fkey FOREIGN KEY (reel_id)
        REFERENCES market.reels (id) ON DELETE CASCADE,
    CONSTRAINT reel_comments_user_id_fkey FOREIGN KEY (user_id) REFERENCES market.users (id),
    CONSTRAINT reel_comments_parent_id_fkey FOREIGN KEY (parent_id)
        REFERENCES market.reel_comments (id) ON DELETE CASCADE,
    -- A reply is on the same reel as the comment it answers.
    CONSTRAINT reel_comments_id_reel_id_key UNIQUE (id, reel_id),
    CONSTRAINT reel_comments_parent_on_same_reel FOREIGN KEY (parent_id, reel_id)
        REFERENCES market.reel_comments (id, reel_id) ON DELETE CASCADE,
    CONSTRAINT reel_comments_content_not_blank CHECK (content ~ '\S'),
    CONSTRAINT reel_comments_like_count_non_negative CHECK (like_count >= 0)
);

CREATE INDEX idx_reel_comments_reel_id ON market.reel_comments (reel_id);
CREATE INDEX idx_reel_comments_user_id ON market.reel_comments (user_id);
CREATE INDEX idx_reel_comments_parent_id ON market.reel_comments (parent_id);

CREATE TRIGGER trg_reel_comments_updated_at
    BEFORE UPDATE ON market.reel_comments
    FOR EACH ROW EXECUTE FUNCTION market.set_updated_at();

-- reels.comment_count = the reel's comments (replies included) with deleted_at IS NULL: a soft
-- delete takes one off, restoring puts it back.
CREATE TRIGGER trg_reel_comments_count_insert
    AFTER INSERT ON market.reel_comments REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('reels', 'reel_id', 'comment_count', 'deleted_at IS NULL');
CREATE TRIGGER trg_reel_comments_count_update
    AFTER UPDATE ON market.reel_comments REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('reels', 'reel_id', 'comment_count', 'deleted_at IS NULL');
CREATE TRIGGER trg_reel_comments_count_delete
    AFTER DELETE ON market.reel_comments REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION
        market.maintain_counter('reels', 'reel_id', 'comment_count', 'deleted_at IS NULL');

-- ---------------------------------------------------------------------------------------------
-- subscriptions: who follows whom
-- ---------------------------------------------------------------------------------------------
CREATE TABLE market.subscriptions (
    id                bigserial PRIMARY KEY,
    subscriber_id     bigint NOT NULL,
    subscribed_to_id  bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT subscriptions_subscriber_id_fkey FOREIGN KEY (subscriber_id)
        REFERENCES market.users (id) ON DELETE CASCADE,
    CONSTRAINT subscriptions_subscribed_to_id_fkey FOREIGN KEY (subscribed_to_id)
        REFERENCES market.users (id) ON DELETE CASCADE,
    CONSTRAINT subscriptions_not_self CHECK (subscriber_id <> subscribed_to_id)
);

CREATE INDEX idx_subscriptions_subscriber ON market.subscriptions (subscriber_id);
CREATE INDEX idx_subscriptions_subscribed_to ON market.subscriptions (subscribed_to_id);
CREATE UNIQUE INDEX idx_subscriptions_unique
    ON market.subscriptions (subscriber_id, subscribed_to_id);
