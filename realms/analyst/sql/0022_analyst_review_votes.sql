-- Issue 21 item 4: reviews.helpfulness_upvotes / helpfulness_downvotes (seed 000, table 8) as
-- counts of something. Until now each vote only added 1 to a counter, so a user could vote
-- any number of times and the counters equalled no count(*). analyst.review_votes holds one
-- vote per user and review ('up' or 'down', changeable, withdrawable); the counters are kept
-- from it by a statement-level trigger with deltas. Votes cast before this migration have no
-- row: the counters keep them, and count only new votes on top.

CREATE TABLE analyst.review_votes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    review_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL,
    vote        varchar(4)  NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT review_votes_review_id_fkey FOREIGN KEY (review_id)
        REFERENCES analyst.reviews (id) ON DELETE CASCADE,
    CONSTRAINT review_votes_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES analyst.users (id) ON DELETE CASCADE,
    CONSTRAINT review_votes_vote_valid CHECK (vote IN ('up', 'down')),
    CONSTRAINT review_votes_review_id_user_id_key UNIQUE (review_id, user_id)
);

-- review_votes_review_id_user_id_key is the FK index of review_id.
CREATE INDEX idx_review_votes_user_id ON analyst.review_votes (user_id);

CREATE TRIGGER trg_review_votes_updated_at
    BEFORE UPDATE ON analyst.review_votes
    FOR EACH ROW EXECUTE FUNCTION analyst.update_updated_at_column();

CREATE OR REPLACE FUNCTION analyst.keep_review_vote_review() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.review_id IS DISTINCT FROM OLD.review_id THEN
        RAISE EXCEPTION 'review_votes.review_id is immutable' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_review_votes_keep_review
    BEFORE UPDATE OF review_id ON analyst.review_votes
    FOR EACH ROW EXECUTE FUNCTION analyst.keep_review_vote_review();

-- ---------------------------------------------------------------------------------------------
-- update_review_helpfulness(): per review, helpfulness_upvotes += new 'up' rows - old 'up'
-- rows, and the same for 'down' (so switching a vote moves one from one counter to the other).
-- Reviews locked in id order first; never below 0.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION analyst.update_review_helpfulness() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_ids  uuid[];
    v_up   bigint[];
    v_down bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(review_id ORDER BY review_id), array_agg(up ORDER BY review_id),
               array_agg(down ORDER BY review_id)
          INTO v_ids, v_up, v_down
          FROM (SELECT review_id, count(*) FILTER (WHERE vote = 'up') AS up,
                       count(*) FILTER (WHERE vote = 'down') AS down
                  FROM new_rows GROUP BY review_id) d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(review_id ORDER BY review_id), array_agg(up ORDER BY review_id),
               array_agg(down ORDER BY review_id)
          INTO v_ids, v_up, v_down
          FROM (SELECT review_id, -count(*) FILTER (WHERE vote = 'up') AS up,
                       -count(*) FILTER (WHERE vote = 'down') AS down
                  FROM old_rows GROUP BY review_id) d;
    ELSE  -- UPDATE
        SELECT array_agg(review_id ORDER BY review_id), array_agg(up ORDER BY review_id),
               array_agg(down ORDER BY review_id)
          INTO v_ids, v_up, v_down
          FROM (SELECT review_id, sum(d) FILTER (WHERE vote = 'up') AS up,
                       sum(d) FILTER (WHERE vote = 'down') AS down
                  FROM (SELECT review_id, vote, 1 AS d FROM new_rows
                        UNION ALL
                        SELECT review_id, vote, -1 FROM old_rows) changes
                 GROUP BY review_id) d
         WHERE coalesce(up, 0) <> 0 OR coalesce(down, 0) <> 0;
    END IF;

    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM analyst.reviews WHERE id = ANY (v_ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE analyst.reviews r
       SET helpfulness_upvotes = greatest(r.helpfulness_upvotes + coalesce(d.up, 0), 0),
           helpfulness_downvotes = greatest(r.helpfulness_downvotes + coalesce(d.down, 0), 0)
      FROM unnest(v_ids, v_up, v_down) AS d(review_id, up, down)
     WHERE r.id = d.review_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER trg_review_votes_helpfulness_insert
    AFTER INSERT ON analyst.review_votes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_review_helpfulness();
CREATE TRIGGER trg_review_votes_helpfulness_update
    AFTER UPDATE ON analyst.review_votes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_review_helpfulness();
CREATE TRIGGER trg_review_votes_helpfulness_delete
    AFTER DELETE ON analyst.review_votes
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION analyst.update_review_helpfulness();
