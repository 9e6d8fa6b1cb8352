-- Issue 21 item 4: comments on posts, so that posts.comments_count (seed 000, table 6) counts
-- something. The seed documents the counter but no comments table; this is the reading:
--
-- analyst.post_comments: a reader's comment on a post. Soft deletes like the rest of the
-- schema (deleted_at, with who removed it and why: its author, the post's analyst, an admin,
-- or moderation). posts.comments_count = the post's comments with deleted_at IS NULL, kept by
-- a statement-level trigger with deltas, as bookmarks_count is (0004).

CREATE TABLE analyst.post_comments (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id          uuid        NOT NULL,
    user_id          uuid        NOT NULL,
    content          text        NOT NULL,
    edited_at        timestamptz,
    deleted_at       timestamptz,
    deleted_by       uuid,
    deletion_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT post_comments_post_id_fkey FOREIGN KEY (post_id)
        REFERENCES analyst.posts (id) ON DELETE CASCADE,
    CONSTRAINT post_comments_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES analyst.users (id),
    CONSTRAINT post_comments_deleted_by_fkey FOREIGN KEY (deleted_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    -- Characters, not bytes, like chat messages (0005).
    CONSTRAINT post_comments_content_length CHECK (char_length(content) BETWEEN 1 AND 2000),
    CONSTRAINT post_comments_deletion_reason_length
        CHECK (deletion_reason IS NULL OR char_length(deletion_reason) <= 500)
);

-- A post's thread, oldest first (also the FK index of post_id).
CREATE INDEX idx_post_comments_post_id ON analyst.post_comments (post_id, created_at, id);
-- "My comments" and the FK index of user_id.
CREATE INDEX idx_post_comments_user_id ON analyst.post_comments (user_id, created_at DESC);
CREATE INDEX idx_post_comments_deleted_by ON analyst.post_comments (deleted_by)
    WHERE deleted_by IS NOT NULL;

CREATE TRIGGER trg_post_comments_updated_at
    BEFORE UPDATE ON analyst.post_comments
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

-- Moving a comment to another post would move its counter too; it is refused instead.
CREATE OR REPLACE FUNCTION analyst.keep_post_comment_post() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.post_id IS DISTINCT FROM OLD.post_id THEN
        RAISE EXCEPTION 'post_comments.post_id is immutable' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_post_comments_keep_post
    BEFORE UPDATE OF post_id ON analyst.post_comments
    FOR EACH ROW EXECUTE FUNCTION analyst.keep_post_comment_post();

-- ---------------------------------------------------------------------------------------------
-- update_post_comment_count(): posts.comments_count = the post's live comments
-- (deleted_at IS NULL). Deltas per post: +1 per row that becomes live (insert, undelete), -1 per
-- live row that stops counting (soft or hard delete). The posts are locked in id order first,
-- so concurrent statements cannot deadlock; the delta is added to the locked row's current
-- value, so concurrent writers never lose one another's counts.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION analyst.update_post_comment_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids   uuid[];
    v_delta bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(post_id ORDER BY post_id), array_agg(n ORDER BY post_id)
          INTO v_ids, v_delta
          FROM (SELECT post_id, count(*) AS n FROM new_rows
                 WHERE deleted_at IS NULL GROUP BY post_id) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(post_id ORDER BY post_id), array_agg(n ORDER BY post_id)
          INTO v_ids, v_delta
          FROM (SELECT post_id, -count(*) AS n FROM old_rows
                 WHERE deleted_at IS NULL GROUP BY post_id) d;
    ELSE  -- UPDATE
        SELECT array_agg(post_id ORDER BY post_id), array_agg(n ORDER BY post_id)
          INTO v_ids, v_delta
          FROM (SELECT post_id, sum(d) AS n
                  FROM (SELECT post_id, 1 AS d FROM new_rows WHERE deleted_at IS NULL
                        UNION ALL
                        SELECT post_id, -1 FROM old_rows WHERE deleted_at IS NULL) changes
                 GROUP BY post_id) d
         WHERE n <> 0;
    END IF;

    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM analyst.posts WHERE id = ANY (v_ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE analyst.posts p
       SET comments_count = greatest(p.comments_count + d.n, 0)
      FROM unnest(v_ids, v_delta) AS d(post_id, n)
     WHERE p.id = d.post_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_post_comments_post_comment_count_insert
    AFTER INSERT ON analyst.post_comments
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_post_comment_count();
CREATE TRIGGER trg_post_comments_post_comment_count_update
    AFTER UPDATE ON analyst.post_comments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_post_comment_count();
CREATE TRIGGER trg_post_comments_post_comment_count_delete
    AFTER DELETE ON analyst.post_comments
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_post_comment_count();

-- Comments can be reported and removed through moderation like the other content.
ALTER TABLE analyst.moderation_flags
    DROP CONSTRAINT moderation_flags_flagged_entity_type_valid,
    ADD CONSTRAINT moderation_flags_flagged_entity_type_valid CHECK (
        flagged_entity_type IN ('user', 'analyst', 'post', 'chat_message', 'review', 'comment')
    );
