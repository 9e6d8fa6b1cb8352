-- Realm academy (seed 001, "Dracarys" trading academy, a Supabase schema): schema `academy`,
-- the extensions, the two enums, academy.uid() (the stand-in for Supabase auth.uid()), the
-- updated_at trigger function, every table with its columns, defaults, CHECKs, UNIQUEs and
-- foreign keys, every documented index, and the updated_at triggers.
-- Functions, the leaderboard trigger and the views: 1002. Role, grants and RLS policies: 1003.
-- Readings of the seed's vague or Supabase-specific points: realms/academy/SCHEMA_NOTES.md.
--
-- Names follow the seed's conventions: indexes idx_<table>_<column> (the seed's own names where
-- it gives them), foreign keys fk_<table>_<column>, checks ck_<table>_<column>_<condition>.
-- UNIQUE constraints keep Postgres' default names (<table>_<columns>_key).
-- Columns, types, defaults and nullability are exactly the seed's: nothing is made NOT NULL
-- that the seed leaves nullable. Every object is schema-qualified (no search_path reliance).

CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS citext;   -- users.email (case-insensitive, as in Supabase)

CREATE SCHEMA IF NOT EXISTS academy;

-- ---------------------------------------------------------------------------------------------
-- Enums (seed, "Migration Example": created before the tables)
-- ---------------------------------------------------------------------------------------------
-- activity_type: the kinds of user_activity_log rows; user_activity_log.activity_type keeps the
-- documented varchar(50) and is checked against this enum's labels (ALTER TYPE ... ADD VALUE
-- widens the check). subscription_status: the labels of user_subscriptions.status, whose
-- documented CHECK lists exactly these values.
CREATE TYPE academy.activity_type AS ENUM
    ('login', 'lesson_complete', 'achievement_gain', 'post_create', 'session_join');
CREATE TYPE academy.subscription_status AS ENUM
    ('active', 'past_due', 'canceled', 'unpaid', 'trialing');

-- ---------------------------------------------------------------------------------------------
-- academy.uid(): Supabase's auth.uid(). The API runs each user request in a transaction with
--   SET LOCAL ROLE academy_user; SET LOCAL academy.user_id = '<uuid from the verified token>';
-- NULL when no claim is set (anonymous), also after a SET LOCAL of an earlier transaction of
-- the same session ended (the setting then reads as '').
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION academy.uid() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('academy.user_id', true), '')::uuid
$$;

-- update_updated_at_column(): sets updated_at on every UPDATE of a table that has the column.
CREATE FUNCTION academy.update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- 1. users: stands in for Supabase's auth.users (same columns, same defaults)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email citext NOT NULL,
    encrypted_password text,
    email_confirmed_at timestamptz,
    invited_at timestamptz,
    confirmation_token text,
    confirmation_sent_at timestamptz,
    recovery_token text,
    recovery_sent_at timestamptz,
    email_change_token_new text,
    email_change text,
    email_change_sent_at timestamptz,
    last_sign_in_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    phone text DEFAULT NULL,
    phone_confirmed_at timestamptz,
    phone_change text DEFAULT '',
    phone_change_token text DEFAULT '',
    phone_change_sent_at timestamptz,
    email_change_token_current text DEFAULT '',
    email_change_confirm_status smallint DEFAULT 0,
    banned_until timestamptz,
    reauthentication_token text DEFAULT '',
    reauthentication_sent_at timestamptz,
    is_sso_user boolean DEFAULT false,
    deleted_at timestamptz,
    is_anonymous boolean DEFAULT false,

    CONSTRAINT users_email_key UNIQUE (email)
);

-- Custom user profile extension (one row per user, same id)
CREATE TABLE academy.user_profiles (
    id uuid PRIMARY KEY,
    full_name text,
    avatar_url text,
    bio text,
    timezone text DEFAULT 'UTC',
    preferred_language text DEFAULT 'en',
    trading_experience text DEFAULT 'beginner',
    trading_goals text[],
    current_level integer DEFAULT 1,
    total_xp integer DEFAULT 0,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_user_profiles_id FOREIGN KEY (id)
        REFERENCES academy.users (id) ON DELETE CASCADE
);

-- ---------------------------------------------------------------------------------------------
-- 3. lessons (created before user_progress, which references it)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.lessons (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    level_id integer NOT NULL,
    gate_id integer NOT NULL,
    title text NOT NULL,
    subtitle text,
    description text,
    content_type text DEFAULT 'interactive',
    content_data jsonb NOT NULL,          -- full lesson content
    assessment_data jsonb,                -- quiz/assessment data
    xp_reward integer DEFAULT 0,
    estimated_time interval,
    difficulty text DEFAULT 'intermediate',
    prerequisites uuid[],                 -- ids of required lessons
    is_active boolean DEFAULT true,
    order_index integer DEFAULT 0,
    created_by uuid,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_lessons_created_by FOREIGN KEY (created_by) REFERENCES academy.users (id),
    CONSTRAINT ck_lessons_difficulty_valid
        CHECK (difficulty IN ('beginner', 'intermediate', 'advanced')),
    CONSTRAINT lessons_level_id_gate_id_key UNIQUE (level_id, gate_id)
);

CREATE INDEX idx_lessons_active ON academy.lessons (is_active) WHERE is_active = true;
CREATE INDEX idx_lessons_level_order ON academy.lessons (level_id, gate_id, order_index);
CREATE INDEX idx_lessons_content_type ON academy.lessons (content_type);
-- Not in the seed: index of the foreign key (a user delete checks it).
CREATE INDEX idx_lessons_created_by ON academy.lessons (created_by) WHERE created_by IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- 2. user_progress
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.user_progress (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    level_id integer NOT NULL,
    gate_id integer NOT NULL,
    lesson_id uuid,
    completed boolean DEFAULT false,
    score integer,
    xp_earned integer DEFAULT 0,
    time_spent interval,
    attempts_count integer DEFAULT 1,
    last_attempt_at timestamptz DEFAULT now(),
    completed_at timestamptz,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_user_progress_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT fk_user_progress_lesson_id FOREIGN KEY (lesson_id) REFERENCES academy.lessons (id),
    CONSTRAINT user_progress_user_id_level_id_gate_id_key UNIQUE (user_id, level_id, gate_id)
);

CREATE INDEX idx_user_progress_user ON academy.user_progress (user_id);
CREATE INDEX idx_user_progress_level ON academy.user_progress (level_id, gate_id);
CREATE INDEX idx_user_progress_completed ON academy.user_progress (completed)
    WHERE completed = false;
-- Not in the seed: index of the foreign key (lesson deletes; the lesson_popularity join).
CREATE INDEX idx_user_progress_lesson ON academy.user_progress (lesson_id)
    WHERE lesson_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- 4. achievements, user_achievements
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.achievements (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code varchar(100) NOT NULL,
    title text NOT NULL,
    description text NOT NULL,
    icon_url text,
    category text DEFAULT 'general',
    xp_reward integer DEFAULT 0,
    requirements jsonb,
    rarity text DEFAULT 'common',
    is_active boolean DEFAULT true,
    created_at timestamptz DEFAULT now(),

    CONSTRAINT achievements_code_key UNIQUE (code),
    CONSTRAINT ck_achievements_rarity_valid
        CHECK (rarity IN ('common', 'rare', 'epic', 'legendary'))
);

CREATE TABLE academy.user_achievements (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    achievement_id uuid NOT NULL,
    unlocked_at timestamptz DEFAULT now(),
    progress_value integer DEFAULT 100,   -- percentage or count
    metadata jsonb,

    CONSTRAINT fk_user_achievements_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT fk_user_achievements_achievement_id FOREIGN KEY (achievement_id)
        REFERENCES academy.achievements (id) ON DELETE CASCADE,
    CONSTRAINT user_achievements_user_id_achievement_id_key UNIQUE (user_id, achievement_id)
);

CREATE INDEX idx_user_achievements_user ON academy.user_achievements (user_id);
CREATE INDEX idx_user_achievements_unlocked ON academy.user_achievements (unlocked_at DESC);
-- Not in the seed: index of the foreign key (achievement deletes cascade through it).
CREATE INDEX idx_user_achievements_achievement ON academy.user_achievements (achievement_id);

-- ---------------------------------------------------------------------------------------------
-- 5. leaderboard
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.leaderboard (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    period varchar(20) NOT NULL,
    xp_points integer DEFAULT 0,
    lessons_completed integer DEFAULT 0,
    streak_days integer DEFAULT 0,
    rank integer,
    percentile numeric(5,2),
    period_start_date date NOT NULL,
    period_end_date date NOT NULL,
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_leaderboard_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT ck_leaderboard_period_valid
        CHECK (period IN ('daily', 'weekly', 'monthly', 'all_time')),
    CONSTRAINT leaderboard_user_id_period_period_start_date_key
        UNIQUE (user_id, period, period_start_date)
);

CREATE INDEX idx_leaderboard_period_rank ON academy.leaderboard (period, period_start_date, rank);
CREATE INDEX idx_leaderboard_user_period
    ON academy.leaderboard (user_id, period, period_end_date DESC);

-- ---------------------------------------------------------------------------------------------
-- 6. user_streaks (one row per user)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.user_streaks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    current_streak integer DEFAULT 0,
    longest_streak integer DEFAULT 0,
    last_activity_date date,
    last_streak_reset timestamptz,
    streak_streak_data jsonb,             -- daily activity tracking (the seed's column name)
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_user_streaks_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT user_streaks_user_id_key UNIQUE (user_id)
);

CREATE INDEX idx_user_streaks_user ON academy.user_streaks (user_id);
CREATE INDEX idx_user_streaks_reset ON academy.user_streaks (last_streak_reset);

-- ---------------------------------------------------------------------------------------------
-- 7. user_activity_log
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.user_activity_log (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    activity_type varchar(50) NOT NULL,
    entity_type varchar(50),              -- lesson, achievement, etc.
    entity_id uuid,
    metadata jsonb,
    session_id uuid,
    ip_address inet,
    user_agent text,
    created_at timestamptz DEFAULT now(),

    CONSTRAINT fk_user_activity_log_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    -- The seed's activity_type enum, applied to the documented varchar column.
    CONSTRAINT ck_user_activity_log_activity_type_valid
        CHECK (activity_type = ANY (enum_range(NULL::academy.activity_type)::text[]))
);

CREATE INDEX idx_activity_log_user_time ON academy.user_activity_log (user_id, created_at DESC);
CREATE INDEX idx_activity_log_type ON academy.user_activity_log (activity_type);
CREATE INDEX idx_activity_log_session ON academy.user_activity_log (session_id);

-- ---------------------------------------------------------------------------------------------
-- 8. community_posts, community_comments, community_votes
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.community_posts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    author_id uuid NOT NULL,
    title text NOT NULL,
    content text,
    post_type varchar(20) DEFAULT 'discussion',
    category text,
    tags text[],
    is_pinned boolean DEFAULT false,
    is_locked boolean DEFAULT false,
    upvotes_count integer DEFAULT 0,
    downvotes_count integer DEFAULT 0,
    comments_count integer DEFAULT 0,
    views_count integer DEFAULT 0,
    last_activity_at timestamptz DEFAULT now(),
    metadata jsonb,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_community_posts_author_id FOREIGN KEY (author_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT ck_community_posts_post_type_valid
        CHECK (post_type IN ('discussion', 'question', 'announcement'))
);

CREATE TABLE academy.community_comments (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    post_id uuid NOT NULL,
    author_id uuid NOT NULL,
    parent_comment_id uuid,
    content text NOT NULL,
    upvotes_count integer DEFAULT 0,
    downvotes_count integer DEFAULT 0,
    is_deleted boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_community_comments_post_id FOREIGN KEY (post_id)
        REFERENCES academy.community_posts (id) ON DELETE CASCADE,
    CONSTRAINT fk_community_comments_author_id FOREIGN KEY (author_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT fk_community_comments_parent_comment_id FOREIGN KEY (parent_comment_id)
        REFERENCES academy.community_comments (id) ON DELETE CASCADE
);

-- target_id points at a post or a comment (target_type says which): no foreign key.
CREATE TABLE academy.community_votes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    target_type varchar(20) NOT NULL,
    target_id uuid NOT NULL,
    vote_type varchar(10) NOT NULL,
    created_at timestamptz DEFAULT now(),

    CONSTRAINT fk_community_votes_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT ck_community_votes_target_type_valid CHECK (target_type IN ('post', 'comment')),
    CONSTRAINT ck_community_votes_vote_type_valid CHECK (vote_type IN ('upvote', 'downvote')),
    CONSTRAINT community_votes_user_id_target_type_target_id_key
        UNIQUE (user_id, target_type, target_id)
);

CREATE INDEX idx_posts_author ON academy.community_posts (author_id);
CREATE INDEX idx_posts_category ON academy.community_posts (category);
CREATE INDEX idx_posts_pinned ON academy.community_posts (is_pinned) WHERE is_pinned = true;
CREATE INDEX idx_posts_activity ON academy.community_posts (last_activity_at DESC);
CREATE INDEX idx_comments_post ON academy.community_comments (post_id);
CREATE INDEX idx_comments_author ON academy.community_comments (author_id);
CREATE INDEX idx_votes_target ON academy.community_votes (target_type, target_id);
-- Not in the seed: index of the self-referencing foreign key (replies of a comment).
CREATE INDEX idx_comments_parent ON academy.community_comments (parent_comment_id)
    WHERE parent_comment_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- 9. live_sessions, session_participants
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.live_sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title text NOT NULL,
    description text,
    host_id uuid NOT NULL,
    session_type varchar(20) DEFAULT 'workshop',
    scheduled_at timestamptz NOT NULL,
    duration interval NOT NULL,
    max_participants integer,
    current_participants integer DEFAULT 0,
    meeting_url text,
    recording_url text,
    is_recorded boolean DEFAULT false,
    status varchar(20) DEFAULT 'scheduled',
    prerequisites jsonb,                  -- {"min_level": 2, "required_lessons": [...]}
    tags text[],
    metadata jsonb,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_live_sessions_host_id FOREIGN KEY (host_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT ck_live_sessions_session_type_valid
        CHECK (session_type IN ('workshop', 'q&a', 'presentation')),
    CONSTRAINT ck_live_sessions_status_valid
        CHECK (status IN ('scheduled', 'live', 'ended', 'cancelled'))
);

CREATE TABLE academy.session_participants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id uuid NOT NULL,
    user_id uuid NOT NULL,
    joined_at timestamptz,
    left_at timestamptz,
    attendance_status varchar(20) DEFAULT 'registered',
    feedback_rating integer,
    feedback_text text,
    created_at timestamptz DEFAULT now(),

    CONSTRAINT fk_session_participants_session_id FOREIGN KEY (session_id)
        REFERENCES academy.live_sessions (id) ON DELETE CASCADE,
    CONSTRAINT fk_session_participants_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT ck_session_participants_attendance_status_valid
        CHECK (attendance_status IN ('registered', 'attended', 'missed', 'waitlisted')),
    CONSTRAINT ck_session_participants_feedback_rating_range
        CHECK (feedback_rating >= 1 AND feedback_rating <= 5),
    CONSTRAINT session_participants_session_id_user_id_key UNIQUE (session_id, user_id)
);

CREATE INDEX idx_sessions_host ON academy.live_sessions (host_id);
CREATE INDEX idx_sessions_scheduled ON academy.live_sessions (scheduled_at);
CREATE INDEX idx_sessions_status ON academy.live_sessions (status);
CREATE INDEX idx_session_participants_session ON academy.session_participants (session_id);
-- Not in the seed: index of the foreign key (a user's registrations; user deletes).
CREATE INDEX idx_session_participants_user ON academy.session_participants (user_id);

-- ---------------------------------------------------------------------------------------------
-- 10. subscription_plans, user_subscriptions
-- ---------------------------------------------------------------------------------------------
CREATE TABLE academy.subscription_plans (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    description text,
    plan_type varchar(20) DEFAULT 'monthly',
    price decimal(10,2) NOT NULL,
    currency varchar(3) DEFAULT 'USD',
    stripe_price_id text,
    features jsonb NOT NULL,
    is_active boolean DEFAULT true,
    trial_days integer DEFAULT 0,
    max_users integer,                    -- for team plans
    level_access_limit integer DEFAULT 99, -- max level accessible
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT ck_subscription_plans_plan_type_valid
        CHECK (plan_type IN ('monthly', 'yearly', 'lifetime')),
    CONSTRAINT subscription_plans_stripe_price_id_key UNIQUE (stripe_price_id)
);

CREATE TABLE academy.user_subscriptions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    plan_id uuid NOT NULL,
    stripe_subscription_id text,
    status varchar(20) DEFAULT 'active',
    current_period_start timestamptz,
    current_period_end timestamptz,
    trial_end timestamptz,
    cancel_at_period_end boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),

    CONSTRAINT fk_user_subscriptions_user_id FOREIGN KEY (user_id)
        REFERENCES academy.users (id) ON DELETE CASCADE,
    CONSTRAINT fk_user_subscriptions_plan_id FOREIGN KEY (plan_id)
        REFERENCES academy.subscription_plans (id) ON DELETE RESTRICT,
    CONSTRAINT ck_user_subscriptions_status_valid
        CHECK (status IN ('active', 'past_due', 'canceled', 'unpaid', 'trialing')),
    CONSTRAINT user_subscriptions_stripe_subscription_id_key UNIQUE (stripe_subscription_id)
);

CREATE INDEX idx_subscription_plans_active ON academy.subscription_plans (is_active)
    WHERE is_active = true;
CREATE INDEX idx_user_subscriptions_user ON academy.user_subscriptions (user_id);
CREATE INDEX idx_user_subscriptions_status ON academy.user_subscriptions (status);
-- Not in the seed: index of the foreign key (a plan delete is RESTRICTed through it).
CREATE INDEX idx_user_subscriptions_plan ON academy.user_subscriptions (plan_id);

-- ---------------------------------------------------------------------------------------------
-- updated_at triggers: every table with an updated_at column
-- ---------------------------------------------------------------------------------------------
CREATE TRIGGER trg_users_updated_at BEFORE UPDATE ON academy.users
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_user_profiles_updated_at BEFORE UPDATE ON academy.user_profiles
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_lessons_updated_at BEFORE UPDATE ON academy.lessons
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_user_progress_updated_at BEFORE UPDATE ON academy.user_progress
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_leaderboard_updated_at BEFORE UPDATE ON academy.leaderboard
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_user_streaks_updated_at BEFORE UPDATE ON academy.user_streaks
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_community_posts_updated_at BEFORE UPDATE ON academy.community_posts
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_community_comments_updated_at BEFORE UPDATE ON academy.community_comments
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_live_sessions_updated_at BEFORE UPDATE ON academy.live_sessions
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_subscription_plans_updated_at BEFORE UPDATE ON academy.subscription_plans
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
CREATE TRIGGER trg_user_subscriptions_updated_at BEFORE UPDATE ON academy.user_subscriptions
    FOR EACH ROW EXECUTE FUNCTION academy.update_updated_at_column();
