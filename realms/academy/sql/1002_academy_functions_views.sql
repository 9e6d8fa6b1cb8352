-- Realm academy (seed 001, "Database Views & Functions"): calculate_user_level(),
-- update_leaderboard() with its trigger on user_progress, and the views user_learning_stats and
-- lesson_popularity. Relies on 1001. Readings: realms/academy/SCHEMA_NOTES.md.

-- ---------------------------------------------------------------------------------------------
-- calculate_user_level(total_xp): the seed's formula, verbatim. XP to reach the next level
-- doubles each level (1000, 2000, 4000, 8000, ...), so levels start at 0, 3000, 7000, 15000,
-- 31000, ... total XP. NULL or negative XP is level 1.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION academy.calculate_user_level(total_xp integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    -- XP required doubles each level: 1000, 2000, 4000, 8000, etc.
    RETURN FLOOR(LOG(2, GREATEST(total_xp / 1000 + 1, 2)));
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- update_leaderboard(): adds a completed lesson's XP to the user's weekly leaderboard row
-- (period 'weekly', Monday..Sunday in UTC of completed_at), creating the row if needed.
-- Readings beyond the seed's text (SCHEMA_NOTES.md):
--  * A completion counts once. The seed's function adds NEW.xp_earned on every INSERT or
--    UPDATE of a completed row, so touching a completed row again would add its XP again.
--    Here the insert or update that completes a row adds its xp_earned and 1 to
--    lessons_completed; a later update of an already completed row adds only the change of
--    xp_earned (to the week of its completed_at). So the weekly xp_points of a user always sum
--    to the xp_earned of their completed progress.
--  * completed_at NULL on a completed row counts in the current week (the seed's version
--    would fail on period_start_date NOT NULL and reject the progress write).
--  * SECURITY DEFINER: users write their own progress under RLS but cannot write the
--    leaderboard (academy_user has SELECT only on it); the trigger writes it as its owner.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION academy.update_leaderboard()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = academy, pg_temp AS $$
DECLARE
    newly_completed boolean := TG_OP = 'INSERT' OR OLD.completed IS DISTINCT FROM true;
    gained integer;
    week_start date :=
        date_trunc('week', COALESCE(NEW.completed_at, now()) AT TIME ZONE 'UTC')::date;
BEGIN
    IF newly_completed THEN
        gained := COALESCE(NEW.xp_earned, 0);
    ELSE
        gained := COALESCE(NEW.xp_earned, 0) - COALESCE(OLD.xp_earned, 0);
        IF gained = 0 THEN
            RETURN NEW;
        END IF;
    END IF;

    -- Insert or update leaderboard entry
    INSERT INTO academy.leaderboard
        (user_id, period, xp_points, lessons_completed, period_start_date, period_end_date)
    VALUES (
        NEW.user_id,
        'weekly',
        gained,
        CASE WHEN newly_completed THEN 1 ELSE 0 END,
        week_start,
        week_start + 6
    )
    ON CONFLICT (user_id, period, period_start_date)
    DO UPDATE SET
        xp_points = COALESCE(leaderboard.xp_points, 0) + EXCLUDED.xp_points,
        lessons_completed = COALESCE(leaderboard.lessons_completed, 0)
                            + EXCLUDED.lessons_completed,
        updated_at = now();

    RETURN NEW;
END;
$$;

CREATE TRIGGER trigger_update_leaderboard
    AFTER INSERT OR UPDATE ON academy.user_progress
    FOR EACH ROW
    WHEN (NEW.completed = true)
    EXECUTE FUNCTION academy.update_leaderboard();

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------
-- User learning statistics. security_invoker: queried as academy_user, the RLS policies of
-- user_progress apply, so a user sees their own row only (the owner and jobs see everyone).
CREATE VIEW academy.user_learning_stats WITH (security_invoker = true) AS
SELECT
    up.user_id,
    COUNT(*) AS completed_lessons,
    SUM(up.xp_earned) AS total_xp,
    MAX(up.completed_at) AS last_activity
FROM academy.user_progress up
WHERE up.completed = true
GROUP BY up.user_id;

-- Popular lessons. Runs with its owner's rights (the default): popularity counts every
-- user's completions, and the view shows only aggregates of active lessons.
CREATE VIEW academy.lesson_popularity AS
SELECT
    l.id,
    l.title,
    COUNT(up.id) AS completions,
    AVG(up.score) AS avg_score,
    RANK() OVER (ORDER BY COUNT(up.id) DESC) AS popularity_rank
FROM academy.lessons l
LEFT JOIN academy.user_progress up ON l.id = up.lesson_id AND up.completed = true
WHERE l.is_active = true
GROUP BY l.id, l.title;
