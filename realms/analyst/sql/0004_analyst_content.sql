-- Content (seed 000, tables 6-8 and step 4 of its migration order): owns analyst.posts,
-- analyst.bookmarks, analyst.reviews, their indexes, and the statistics triggers
--   update_post_bookmark_count()   bookmarks -> posts.bookmarks_count            (deltas)
--   update_analyst_post_stats()    posts     -> analyst_profiles.total_posts,
--                                               analyst_profiles.last_post_at  (deltas)
--   update_analyst_review_stats()  reviews   -> analyst_profiles.avg_rating,
--                                               analyst_profiles.total_reviews (recomputed)
-- (statement-level, one UPDATE per affected target row per statement).
-- Relies on 0001 (analyst.update_updated_at_column) and 0002 (analyst.users,
-- analyst.analyst_profiles). Readings of the seed's vague points: docs/schema-notes.md.

-- ---------------------------------------------------------------------------------------------
-- posts: analyst calls and content
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.posts (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    analyst_id            uuid NOT NULL,
    title                 varchar(255),
    content               text NOT NULL,
    content_formatted     jsonb,
    post_type             varchar(50) NOT NULL,
    strategy_type         varchar(50),
    audience              varchar(20) NOT NULL DEFAULT 'both',
    stock_symbol          varchar(50),
    action                varchar(10),
    entry_price           numeric(12, 2),
    target_price          numeric(12, 2),
    stop_loss             numeric(12, 2),
    risk_reward_ratio     varchar(20),
    confidence_level      varchar(20),
    call_status           varchar(20),
    actual_entry_price    numeric(12, 2),
    actual_exit_price     numeric(12, 2),
    actual_profit_percent numeric(6, 2),
    closed_at             timestamptz,
    views_count           integer NOT NULL DEFAULT 0,
    bookmarks_count       integer NOT NULL DEFAULT 0,
    comments_count        integer NOT NULL DEFAULT 0,
    is_urgent             boolean NOT NULL DEFAULT false,
    is_pinned             boolean NOT NULL DEFAULT false,
    is_featured           boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,

    CONSTRAINT posts_analyst_id_fkey FOREIGN KEY (analyst_id) REFERENCES analyst.users (id),
    CONSTRAINT posts_post_type_valid
        CHECK (post_type IN ('call', 'update', 'analysis', 'commentary', 'educational')),
    CONSTRAINT posts_strategy_type_valid
        CHECK (strategy_type IN ('intraday', 'swing', 'positional', 'long_term', 'options')),
    CONSTRAINT posts_audience_valid CHECK (audience IN ('free', 'paid', 'both')),
    CONSTRAINT posts_action_valid CHECK (action IN ('BUY', 'SELL', 'HOLD')),
    CONSTRAINT posts_confidence_level_valid
        CHECK (confidence_level IN ('LOW', 'MEDIUM', 'HIGH', 'VERY_HIGH')),
    CONSTRAINT posts_call_status_valid
        CHECK (call_status IN ('open', 'target_hit', 'stop_loss_hit', 'closed', 'expired')),
    CONSTRAINT posts_entry_price_positive CHECK (entry_price > 0),
    CONSTRAINT posts_target_price_positive CHECK (target_price > 0),
    CONSTRAINT posts_stop_loss_positive CHECK (stop_loss > 0),
    CONSTRAINT posts_actual_entry_price_positive CHECK (actual_entry_price > 0),
    CONSTRAINT posts_actual_exit_price_positive CHECK (actual_exit_price > 0),
    CONSTRAINT posts_views_count_non_negative CHECK (views_count >= 0),
    CONSTRAINT posts_bookmarks_count_non_negative CHECK (bookmarks_count >= 0),
    CONSTRAINT posts_comments_count_non_negative CHECK (comments_count >= 0)
);

-- FK index (full, so cascades and RI checks on users can use it).
CREATE INDEX idx_posts_analyst_id ON analyst.posts (analyst_id);
-- Analyst's post feed, and the user feed (analyst_id = ANY(subscribed) ORDER BY created_at DESC).
CREATE INDEX idx_posts_analyst_timeline ON analyst.posts (analyst_id, created_at DESC)
    WHERE deleted_at IS NULL;
-- Urgent calls for the homepage.
CREATE INDEX idx_posts_urgent ON analyst.posts (created_at DESC)
    WHERE is_urgent AND deleted_at IS NULL;
-- Stock-specific queries: latest live posts about one symbol.
CREATE INDEX idx_posts_stock_symbol ON analyst.posts (stock_symbol, created_at DESC)
    WHERE stock_symbol IS NOT NULL AND deleted_at IS NULL;
-- Full-text search. A query uses this index only when it repeats the expression exactly:
--   to_tsvector('english', coalesce(title, '') || ' ' || content) @@ <tsquery>
CREATE INDEX idx_posts_fts ON analyst.posts
    USING gin (to_tsvector('english', coalesce(title, '') || ' ' || content));

CREATE TRIGGER trg_posts_updated_at
    BEFORE UPDATE ON analyst.posts
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- ---------------------------------------------------------------------------------------------
-- bookmarks: posts a user saved. The seed lists created_at only; updated_at is added because
-- its principles give every table both and notes are editable. No deleted_at: un-bookmarking
-- is a hard delete.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.bookmarks (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id    uuid NOT NULL,
    post_id    uuid NOT NULL,
    notes      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT bookmarks_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES analyst.users (id) ON DELETE CASCADE,
    CONSTRAINT bookmarks_post_id_fkey FOREIGN KEY (post_id)
        REFERENCES analyst.posts (id) ON DELETE CASCADE,
    CONSTRAINT bookmarks_user_id_post_id_key UNIQUE (user_id, post_id)
);

-- "My bookmarks, newest first"; also the FK index for user_id.
CREATE INDEX idx_bookmarks_user_id ON analyst.bookmarks (user_id, created_at DESC);
CREATE INDEX idx_bookmarks_post_id ON analyst.bookmarks (post_id);

CREATE TRIGGER trg_bookmarks_updated_at
    BEFORE UPDATE ON analyst.bookmarks
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- ---------------------------------------------------------------------------------------------
-- reviews: ratings of analysts by users
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.reviews (
    id                         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                    uuid NOT NULL,
    analyst_id                 uuid NOT NULL,
    rating                     integer NOT NULL,
    review_title               varchar(255),
    review_text                text,
    is_verified_subscriber     boolean,
    subscription_duration_days integer,
    is_approved                boolean NOT NULL DEFAULT true,
    is_flagged                 boolean NOT NULL DEFAULT false,
    flagged_reason             text,
    moderated_by               uuid,
    moderated_at               timestamptz,
    helpfulness_upvotes        integer NOT NULL DEFAULT 0,
    helpfulness_downvotes      integer NOT NULL DEFAULT 0,
    analyst_response           text,
    analyst_response_at        timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    deleted_at                 timestamptz,

    CONSTRAINT reviews_user_id_fkey FOREIGN KEY (user_id) REFERENCES analyst.users (id),
    CONSTRAINT reviews_analyst_id_fkey FOREIGN KEY (analyst_id) REFERENCES analyst.users (id),
    CONSTRAINT reviews_moderated_by_fkey FOREIGN KEY (moderated_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    CONSTRAINT reviews_rating_range CHECK (rating BETWEEN 1 AND 5),
    CONSTRAINT reviews_no_self_review CHECK (user_id <> analyst_id),
    CONSTRAINT reviews_helpfulness_upvotes_non_negative CHECK (helpfulness_upvotes >= 0),
    CONSTRAINT reviews_helpfulness_downvotes_non_negative CHECK (helpfulness_downvotes >= 0),
    CONSTRAINT reviews_subscription_duration_days_non_negative
        CHECK (subscription_duration_days >= 0)
);

-- One review per user per analyst among live rows: a soft-deleted review frees the slot.
CREATE UNIQUE INDEX idx_reviews_user_analyst_live ON analyst.reviews (user_id, analyst_id)
    WHERE deleted_at IS NULL;
-- FK indexes. analyst_id's also serves the analyst's review page and the stats recomputation.
CREATE INDEX idx_reviews_user_id ON analyst.reviews (user_id);
CREATE INDEX idx_reviews_analyst_id ON analyst.reviews (analyst_id, created_at DESC);
CREATE INDEX idx_reviews_moderated_by ON analyst.reviews (moderated_by)
    WHERE moderated_by IS NOT NULL;

CREATE TRIGGER trg_reviews_updated_at
    BEFORE UPDATE ON analyst.reviews
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- Statistics triggers.
-- All three are statement-level AFTER triggers with transition tables: one call per statement
-- aggregates the statement's rows per target, then updates each target row once. (A row-level
-- trigger would update the same target row once per source row, and inside one transaction
-- every such update walks a longer chain of row versions: a 100k-row bulk insert went from
-- under 2 s to over 100 s.) Transition tables allow one event per trigger, hence three
-- triggers per function, and no column list, so the UPDATE triggers fire on every UPDATE and
-- return early when nothing relevant changed. Target rows are locked in key order first, so
-- concurrent bulk statements cannot deadlock, and so a recomputation (the next statement, hence
-- a new snapshot under READ COMMITTED) sees everything committed before the lock.

-- ---------------------------------------------------------------------------------------------
-- update_post_bookmark_count(): posts.bookmarks_count = number of bookmarks of the post.
-- Deltas: +1 per new row, -1 per old row, per post_id (so an UPDATE that changes post_id moves
-- one from the old post to the new one). Never below 0.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION analyst.update_post_bookmark_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids   uuid[];
    v_delta bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(post_id ORDER BY post_id), array_agg(n ORDER BY post_id)
          INTO v_ids, v_delta
          FROM (SELECT post_id, count(*) AS n FROM new_rows GROUP BY post_id) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(post_id ORDER BY post_id), array_agg(n ORDER BY post_id)
          INTO v_ids, v_delta
          FROM (SELECT post_id, -count(*) AS n FROM old_rows GROUP BY post_id) d;
    ELSE  -- UPDATE
        SELECT array_agg(post_id ORDER BY post_id), array_agg(n ORDER BY post_id)
          INTO v_ids, v_delta
          FROM (SELECT post_id, sum(d) AS n
                  FROM (SELECT post_id, 1 AS d FROM new_rows
                        UNION ALL
                        SELECT post_id, -1 FROM old_rows) changes
                 GROUP BY post_id) d
         WHERE n <> 0;
    END IF;

    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM analyst.posts WHERE id = ANY (v_ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE analyst.posts p
       SET bookmarks_count = greatest(p.bookmarks_count + d.n, 0)
      FROM unnest(v_ids, v_delta) AS d(post_id, n)
     WHERE p.id = d.post_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_bookmarks_post_bookmark_count_insert
    AFTER INSERT ON analyst.bookmarks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_post_bookmark_count();
CREATE TRIGGER trg_bookmarks_post_bookmark_count_update
    AFTER UPDATE ON analyst.bookmarks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_post_bookmark_count();
CREATE TRIGGER trg_bookmarks_post_bookmark_count_delete
    AFTER DELETE ON analyst.bookmarks
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_post_bookmark_count();

-- ---------------------------------------------------------------------------------------------
-- update_analyst_post_stats(): for the profile whose user_id = posts.analyst_id,
--   total_posts  = number of its posts with deleted_at IS NULL ("live")
--   last_post_at = max(created_at) over those posts
-- Per analyst, a statement's live rows that LEFT (hard or soft delete, moved to another
-- analyst, or re-dated) and that JOINED (insert, undelete, moved in, re-dated):
--   total_posts  += joined - left, never below 0
--   last_post_at  = recomputed from the table when anything left (an index probe on
--                   idx_posts_analyst_timeline), else greatest(last_post_at, max joined)
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION analyst.update_analyst_post_stats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids       uuid[];
    v_delta     bigint[];
    v_latest    timestamptz[];
    v_recompute boolean[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(analyst_id ORDER BY analyst_id), array_agg(n ORDER BY analyst_id),
               array_agg(latest ORDER BY analyst_id), array_agg(false)
          INTO v_ids, v_delta, v_latest, v_recompute
          FROM (SELECT analyst_id, count(*) AS n, max(created_at) AS latest
                  FROM new_rows WHERE deleted_at IS NULL GROUP BY analyst_id) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(analyst_id ORDER BY analyst_id), array_agg(n ORDER BY analyst_id),
               array_agg(NULL::timestamptz), array_agg(true)
          INTO v_ids, v_delta, v_latest, v_recompute
          FROM (SELECT analyst_id, -count(*) AS n
                  FROM old_rows WHERE deleted_at IS NULL GROUP BY analyst_id) d;
    ELSE  -- UPDATE: compare the live rows before and after; unrelated edits cancel out.
        WITH was_live AS (SELECT id, analyst_id, created_at FROM old_rows
                           WHERE deleted_at IS NULL),
             is_live  AS (SELECT id, analyst_id, created_at FROM new_rows
                           WHERE deleted_at IS NULL),
             changes  AS (SELECT analyst_id, -1 AS d, NULL::timestamptz AS latest,
                                 true AS recompute
                            FROM (SELECT * FROM was_live EXCEPT ALL SELECT * FROM is_live) l
                          UNION ALL
                          SELECT analyst_id, 1, created_at, false
                            FROM (SELECT * FROM is_live EXCEPT ALL SELECT * FROM was_live) j)
        SELECT array_agg(analyst_id ORDER BY analyst_id), array_agg(n ORDER BY analyst_id),
               array_agg(latest ORDER BY analyst_id), array_agg(recompute ORDER BY analyst_id)
          INTO v_ids, v_delta, v_latest, v_recompute
          FROM (SELECT analyst_id, sum(d) AS n, max(latest) AS latest,
                       bool_or(recompute) AS recompute
                  FROM changes GROUP BY analyst_id) d;
    END IF;

    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM analyst.analyst_profiles
     WHERE user_id = ANY (v_ids) ORDER BY user_id FOR NO KEY UPDATE;
    UPDATE analyst.analyst_profiles ap
       SET total_posts  = greatest(ap.total_posts + d.n, 0),
           last_post_at = CASE
                              WHEN d.recompute THEN (SELECT max(p.created_at)
                                                       FROM analyst.posts p
                                                      WHERE p.analyst_id = d.analyst_id
                                                        AND p.deleted_at IS NULL)
                              ELSE greatest(ap.last_post_at, d.latest)
                          END
      FROM unnest(v_ids, v_delta, v_latest, v_recompute) AS d(analyst_id, n, latest, recompute)
     WHERE ap.user_id = d.analyst_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_posts_analyst_post_stats_insert
    AFTER INSERT ON analyst.posts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_post_stats();
CREATE TRIGGER trg_posts_analyst_post_stats_update
    AFTER UPDATE ON analyst.posts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_post_stats();
CREATE TRIGGER trg_posts_analyst_post_stats_delete
    AFTER DELETE ON analyst.posts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_post_stats();

-- ---------------------------------------------------------------------------------------------
-- update_analyst_review_stats(): recomputes, for each analyst a statement's reviews touch,
--   avg_rating    = round(avg(rating), 2), 0 when there is none
--   total_reviews = count(*)
-- over that analyst's reviews WHERE deleted_at IS NULL AND is_approved. Recomputed, not
-- deltas: reviews are few per analyst, and an average kept by deltas drifts. An UPDATE counts
-- as touching only when rating, is_approved, deleted_at or analyst_id changed (both the old and
-- the new analyst are recomputed).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION analyst.update_analyst_review_stats() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(DISTINCT analyst_id ORDER BY analyst_id) INTO v_ids FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT analyst_id ORDER BY analyst_id) INTO v_ids FROM old_rows;
    ELSE  -- UPDATE
        WITH before AS (SELECT id, analyst_id, rating, is_approved, deleted_at FROM old_rows),
             after  AS (SELECT id, analyst_id, rating, is_approved, deleted_at FROM new_rows),
             changed AS ((SELECT * FROM before EXCEPT ALL SELECT * FROM after)
                         UNION ALL
                         (SELECT * FROM after EXCEPT ALL SELECT * FROM before))
        SELECT array_agg(DISTINCT analyst_id ORDER BY analyst_id) INTO v_ids FROM changed;
    END IF;

    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM analyst.analyst_profiles
     WHERE user_id = ANY (v_ids) ORDER BY user_id FOR NO KEY UPDATE;
    UPDATE analyst.analyst_profiles ap
       SET avg_rating    = s.avg_rating,
           total_reviews = s.total_reviews
      FROM (SELECT a.analyst_id,
                   coalesce(round(avg(r.rating), 2), 0) AS avg_rating,
                   count(r.id)::integer                 AS total_reviews
              FROM unnest(v_ids) AS a(analyst_id)
              LEFT JOIN analyst.reviews r
                     ON r.analyst_id = a.analyst_id
                    AND r.deleted_at IS NULL
                    AND r.is_approved
             GROUP BY a.analyst_id) s
     WHERE ap.user_id = s.analyst_id
       AND (ap.avg_rating, ap.total_reviews) IS DISTINCT FROM (s.avg_rating, s.total_reviews);
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_reviews_analyst_review_stats_insert
    AFTER INSERT ON analyst.reviews
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_review_stats();
CREATE TRIGGER trg_reviews_analyst_review_stats_update
    AFTER UPDATE ON analyst.reviews
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_review_stats();
CREATE TRIGGER trg_reviews_analyst_review_stats_delete
    AFTER DELETE ON analyst.reviews
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_analyst_review_stats();
