-- Issue 21 item 2: featuring. analyst_profiles.is_featured / feature_position ("homepage
-- ordering") and posts.is_featured (seed 000, tables 3 and 6) are set by admins only.
--
-- * A featured analyst has a position (1 = first on the homepage); a profile that is not
--   featured has none. Positions are unique among featured live profiles: an exclusion
--   constraint, deferred to commit, so an admin can insert at a position and shift the
--   ones after it in one transaction.
-- * Featured posts are listed newest first; idx_posts_featured serves that list.

UPDATE analyst.analyst_profiles SET feature_position = NULL WHERE NOT is_featured;
-- Featured profiles without a position (none are written by the API) go last, in user order.
UPDATE analyst.analyst_profiles p
   SET feature_position = n.pos
  FROM (SELECT user_id,
               coalesce((SELECT max(feature_position) FROM analyst.analyst_profiles
                          WHERE is_featured), 0)
               + row_number() OVER (ORDER BY user_id) AS pos
          FROM analyst.analyst_profiles
         WHERE is_featured AND feature_position IS NULL) n
 WHERE p.user_id = n.user_id;

ALTER TABLE analyst.analyst_profiles
    ADD CONSTRAINT analyst_profiles_feature_position_positive CHECK (feature_position >= 1),
    ADD CONSTRAINT analyst_profiles_feature_position_when_featured
        CHECK ((is_featured AND feature_position IS NOT NULL)
               OR (NOT is_featured AND feature_position IS NULL)),
    ADD CONSTRAINT analyst_profiles_feature_position_unique
        EXCLUDE USING btree (feature_position WITH =)
        WHERE (is_featured AND deleted_at IS NULL)
        DEFERRABLE INITIALLY DEFERRED;

CREATE INDEX idx_posts_featured ON analyst.posts (created_at DESC, id DESC)
    WHERE is_featured AND deleted_at IS NULL;
