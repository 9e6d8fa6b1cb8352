-- Realm academy (seed 001, "Row Level Security (RLS) Policies"): real Postgres RLS.
-- Relies on 1001 (tables, academy.uid()) and 1002 (views).
--
-- How the API uses it: every user request runs in a transaction that starts with
--     SET LOCAL ROLE academy_user;
--     SET LOCAL academy.user_id = '<user id from the verified token>';   -- omit: anonymous
-- academy.uid() (1001) reads the claim, like Supabase's auth.uid(). academy_user is a NOLOGIN
-- role with only the privileges below, and RLS applies to it on every academy table.
--
-- Not FORCE ROW LEVEL SECURITY: the tables' owner (the role that runs migrations; also the
-- workers' and the API's own login when it has not switched role) bypasses RLS, as Supabase's
-- service role does. Sign-up/login, jobs (leaderboard rollover, streak resets, attendance) and
-- the SECURITY DEFINER functions (update_leaderboard, is_admin) rely on that. Superusers
-- bypass RLS whatever is set.
--
-- Supabase's role `authenticated` is academy_user with a claim set (academy.uid() IS NOT
-- NULL); `anon` is academy_user without one. Policies the seed documents keep its names;
-- the others ("And so on for all tables...") are this realm's reading, listed in
-- SCHEMA_NOTES.md. Policies decide which rows; table and column privileges decide which
-- operations and which columns (server-maintained counters, XP, attendance and the secret
-- columns of users are not writable/readable by academy_user).

-- ---------------------------------------------------------------------------------------------
-- The role (cluster-wide: created once, tolerating concurrent migrations of other databases)
-- ---------------------------------------------------------------------------------------------
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'academy_user') THEN
        BEGIN
            CREATE ROLE academy_user NOLOGIN NOSUPERUSER NOINHERIT NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by the migration of another database of this cluster
        END;
    END IF;
    -- A login that is not a superuser needs membership to SET ROLE academy_user.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'academy_user', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT academy_user TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'academy: cannot grant academy_user to %; grant it by hand so the '
                          'API can SET ROLE academy_user', current_user;
        END;
    END IF;
END
$$;

-- is_admin(): the requesting user (academy.uid()) is an administrator: users.is_super_admin
-- is true and the account is not deleted. SECURITY DEFINER so policies can call it whatever
-- the caller may read of academy.users.
CREATE FUNCTION academy.is_admin() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = academy, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM academy.users u
         WHERE u.id = academy.uid() AND u.is_super_admin IS TRUE AND u.deleted_at IS NULL
    )
$$;

GRANT USAGE ON SCHEMA academy TO academy_user;

-- ---------------------------------------------------------------------------------------------
-- Enable RLS on all tables
-- ---------------------------------------------------------------------------------------------
ALTER TABLE academy.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.user_profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.user_progress ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.lessons ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.achievements ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.user_achievements ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.leaderboard ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.user_streaks ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.user_activity_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.community_posts ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.community_comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.community_votes ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.live_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.session_participants ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.subscription_plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE academy.user_subscriptions ENABLE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- users (the auth.users stand-in): a user reads their own account, never its secret columns;
-- accounts are written by the API's sign-up/login code as the owner (like Supabase Auth).
-- ---------------------------------------------------------------------------------------------
GRANT SELECT (id, email, email_confirmed_at, invited_at, confirmation_sent_at, recovery_sent_at,
              email_change, email_change_sent_at, last_sign_in_at, raw_app_meta_data,
              raw_user_meta_data, is_super_admin, created_at, updated_at, phone,
              phone_confirmed_at, phone_change, phone_change_sent_at,
              email_change_confirm_status, banned_until, reauthentication_sent_at, is_sso_user,
              deleted_at, is_anonymous)
    ON academy.users TO academy_user;

CREATE POLICY "Users can view own account" ON academy.users
    FOR SELECT TO academy_user USING (id = academy.uid());

-- ---------------------------------------------------------------------------------------------
-- user_profiles: signed-in users see profiles (community authors); a user creates and edits
-- their own; current_level and total_xp are kept by the server.
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON academy.user_profiles TO academy_user;
GRANT INSERT (id, full_name, avatar_url, bio, timezone, preferred_language, trading_experience,
              trading_goals)
    ON academy.user_profiles TO academy_user;
GRANT UPDATE (full_name, avatar_url, bio, timezone, preferred_language, trading_experience,
              trading_goals)
    ON academy.user_profiles TO academy_user;

CREATE POLICY "Users can view profiles" ON academy.user_profiles
    FOR SELECT TO academy_user USING (academy.uid() IS NOT NULL);
CREATE POLICY "Users can create own profile" ON academy.user_profiles
    FOR INSERT TO academy_user WITH CHECK (id = academy.uid());
CREATE POLICY "Users can update own profile" ON academy.user_profiles
    FOR UPDATE TO academy_user USING (id = academy.uid()) WITH CHECK (id = academy.uid());

-- ---------------------------------------------------------------------------------------------
-- user_progress (documented): own rows only, for every command.
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON academy.user_progress TO academy_user;

CREATE POLICY "Users can view own progress" ON academy.user_progress
    FOR SELECT USING (academy.uid() = user_id);
CREATE POLICY "Users can update own progress" ON academy.user_progress
    FOR ALL USING (academy.uid() = user_id);

-- ---------------------------------------------------------------------------------------------
-- lessons (documented: public read, admin write)
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON academy.lessons TO academy_user;

CREATE POLICY "Anyone can view active lessons" ON academy.lessons
    FOR SELECT USING (is_active = true);
CREATE POLICY "Admins can manage lessons" ON academy.lessons
    FOR ALL TO academy_user USING (academy.is_admin()) WITH CHECK (academy.is_admin());

-- ---------------------------------------------------------------------------------------------
-- achievements: like lessons (the catalogue is public, admins write)
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON academy.achievements TO academy_user;

CREATE POLICY "Anyone can view active achievements" ON academy.achievements
    FOR SELECT USING (is_active = true);
CREATE POLICY "Admins can manage achievements" ON academy.achievements
    FOR ALL TO academy_user USING (academy.is_admin()) WITH CHECK (academy.is_admin());

-- ---------------------------------------------------------------------------------------------
-- user_achievements, user_streaks, user_subscriptions: a user reads their own rows; the
-- server writes them (unlocks, streak updates, billing webhooks).
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON academy.user_achievements TO academy_user;
GRANT SELECT ON academy.user_streaks TO academy_user;
GRANT SELECT ON academy.user_subscriptions TO academy_user;

CREATE POLICY "Users can view own achievements" ON academy.user_achievements
    FOR SELECT TO academy_user USING (user_id = academy.uid());
CREATE POLICY "Users can view own streak" ON academy.user_streaks
    FOR SELECT TO academy_user USING (user_id = academy.uid());
CREATE POLICY "Users can view own subscriptions" ON academy.user_subscriptions
    FOR SELECT TO academy_user USING (user_id = academy.uid());

-- ---------------------------------------------------------------------------------------------
-- leaderboard: every signed-in user reads it; only the trigger (update_leaderboard) and the
-- jobs write it.
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON academy.leaderboard TO academy_user;

CREATE POLICY "Users can view the leaderboard" ON academy.leaderboard
    FOR SELECT TO academy_user USING (academy.uid() IS NOT NULL);

-- ---------------------------------------------------------------------------------------------
-- user_activity_log: a user reads and appends their own log; rows are never changed.
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, INSERT ON academy.user_activity_log TO academy_user;

CREATE POLICY "Users can view own activity" ON academy.user_activity_log
    FOR SELECT TO academy_user USING (user_id = academy.uid());
CREATE POLICY "Users can log own activity" ON academy.user_activity_log
    FOR INSERT TO academy_user WITH CHECK (user_id = academy.uid());

-- ---------------------------------------------------------------------------------------------
-- community_posts (two policies documented), community_comments, community_votes.
-- Counters, pinning, locking and last_activity_at are kept by the server.
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, DELETE ON academy.community_posts TO academy_user;
GRANT INSERT (id, author_id, title, content, post_type, category, tags, metadata)
    ON academy.community_posts TO academy_user;
GRANT UPDATE (title, content, post_type, category, tags, metadata)
    ON academy.community_posts TO academy_user;

CREATE POLICY "Users can view community content" ON academy.community_posts
    FOR SELECT TO academy_user USING (academy.uid() IS NOT NULL);
CREATE POLICY "Users can create posts" ON academy.community_posts
    FOR INSERT TO academy_user WITH CHECK (academy.uid() = author_id);
CREATE POLICY "Users can update own posts" ON academy.community_posts
    FOR UPDATE TO academy_user
    USING (academy.uid() = author_id) WITH CHECK (academy.uid() = author_id);
CREATE POLICY "Users can delete own posts" ON academy.community_posts
    FOR DELETE TO academy_user USING (academy.uid() = author_id);

GRANT SELECT, DELETE ON academy.community_comments TO academy_user;
GRANT INSERT (id, post_id, author_id, parent_comment_id, content)
    ON academy.community_comments TO academy_user;
GRANT UPDATE (content, is_deleted) ON academy.community_comments TO academy_user;

CREATE POLICY "Users can view comments" ON academy.community_comments
    FOR SELECT TO academy_user USING (academy.uid() IS NOT NULL);
CREATE POLICY "Users can comment on unlocked posts" ON academy.community_comments
    FOR INSERT TO academy_user
    WITH CHECK (
        academy.uid() = author_id
        AND NOT EXISTS (SELECT 1 FROM academy.community_posts p
                         WHERE p.id = community_comments.post_id AND p.is_locked IS TRUE)
    );
CREATE POLICY "Users can update own comments" ON academy.community_comments
    FOR UPDATE TO academy_user
    USING (academy.uid() = author_id) WITH CHECK (academy.uid() = author_id);
CREATE POLICY "Users can delete own comments" ON academy.community_comments
    FOR DELETE TO academy_user USING (academy.uid() = author_id);

GRANT SELECT, INSERT, DELETE ON academy.community_votes TO academy_user;
GRANT UPDATE (vote_type) ON academy.community_votes TO academy_user;

CREATE POLICY "Users can view own votes" ON academy.community_votes
    FOR SELECT TO academy_user USING (academy.uid() = user_id);
CREATE POLICY "Users can vote" ON academy.community_votes
    FOR INSERT TO academy_user WITH CHECK (academy.uid() = user_id);
CREATE POLICY "Users can change own votes" ON academy.community_votes
    FOR UPDATE TO academy_user
    USING (academy.uid() = user_id) WITH CHECK (academy.uid() = user_id);
CREATE POLICY "Users can remove own votes" ON academy.community_votes
    FOR DELETE TO academy_user USING (academy.uid() = user_id);

-- ---------------------------------------------------------------------------------------------
-- live_sessions: signed-in users see sessions; a host creates, edits and deletes their own;
-- current_participants is kept by the server (gateway).
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, DELETE ON academy.live_sessions TO academy_user;
GRANT INSERT (id, title, description, host_id, session_type, scheduled_at, duration,
              max_participants, meeting_url, recording_url, is_recorded, status, prerequisites,
              tags, metadata)
    ON academy.live_sessions TO academy_user;
GRANT UPDATE (title, description, host_id, session_type, scheduled_at, duration,
              max_participants, meeting_url, recording_url, is_recorded, status, prerequisites,
              tags, metadata)
    ON academy.live_sessions TO academy_user;

CREATE POLICY "Users can view live sessions" ON academy.live_sessions
    FOR SELECT TO academy_user USING (academy.uid() IS NOT NULL);
CREATE POLICY "Hosts can create sessions" ON academy.live_sessions
    FOR INSERT TO academy_user WITH CHECK (academy.uid() = host_id);
CREATE POLICY "Hosts can update own sessions" ON academy.live_sessions
    FOR UPDATE TO academy_user
    USING (academy.uid() = host_id) WITH CHECK (academy.uid() = host_id);
CREATE POLICY "Hosts can delete own sessions" ON academy.live_sessions
    FOR DELETE TO academy_user USING (academy.uid() = host_id);

-- ---------------------------------------------------------------------------------------------
-- session_participants: a user sees their own registrations and a host those of their
-- sessions; a user registers themselves for a scheduled or live session, cancels their
-- registration, and rates a session they attended. Attendance, join/leave times and the
-- waitlist are kept by the server.
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, DELETE ON academy.session_participants TO academy_user;
GRANT INSERT (session_id, user_id) ON academy.session_participants TO academy_user;
GRANT UPDATE (feedback_rating, feedback_text) ON academy.session_participants TO academy_user;

CREATE POLICY "Participants and hosts can view registrations" ON academy.session_participants
    FOR SELECT TO academy_user
    USING (
        academy.uid() = user_id
        OR EXISTS (SELECT 1 FROM academy.live_sessions s
                    WHERE s.id = session_participants.session_id AND s.host_id = academy.uid())
    );
CREATE POLICY "Users can register themselves" ON academy.session_participants
    FOR INSERT TO academy_user
    WITH CHECK (
        academy.uid() = user_id
        AND EXISTS (SELECT 1 FROM academy.live_sessions s
                     WHERE s.id = session_participants.session_id
                       AND s.status IN ('scheduled', 'live'))
    );
CREATE POLICY "Attendees can rate the session" ON academy.session_participants
    FOR UPDATE TO academy_user
    USING (academy.uid() = user_id AND attendance_status = 'attended')
    WITH CHECK (academy.uid() = user_id AND attendance_status = 'attended');
CREATE POLICY "Users can cancel own registration" ON academy.session_participants
    FOR DELETE TO academy_user USING (academy.uid() = user_id);

-- ---------------------------------------------------------------------------------------------
-- subscription_plans: like lessons (active plans are public, admins write)
-- ---------------------------------------------------------------------------------------------
GRANT SELECT, INSERT, UPDATE, DELETE ON academy.subscription_plans TO academy_user;

CREATE POLICY "Anyone can view active plans" ON academy.subscription_plans
    FOR SELECT USING (is_active = true);
CREATE POLICY "Admins can manage plans" ON academy.subscription_plans
    FOR ALL TO academy_user USING (academy.is_admin()) WITH CHECK (academy.is_admin());

-- ---------------------------------------------------------------------------------------------
-- Views: user_learning_stats is security_invoker (a user sees their own row);
-- lesson_popularity shows aggregates over every user's completions.
-- ---------------------------------------------------------------------------------------------
GRANT SELECT ON academy.user_learning_stats, academy.lesson_popularity TO academy_user;
