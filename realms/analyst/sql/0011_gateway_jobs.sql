-- Scheduled jobs (workers/scheduler.py, workers/jobs.py; seed 000 "Backup & Maintenance"):
-- gateway.job_runs, one row per (job, scheduled time), which is how every worker process agrees
-- that a scheduled time runs at most once; the archive tables for old notifications and closed
-- support tickets; and the two archiving functions, each moving rows in one statement.

-- ---------------------------------------------------------------------------------------------
-- job_runs: the claim and the record of each scheduled (or by-hand) run of a job
-- ---------------------------------------------------------------------------------------------
-- A scheduler claims a time by inserting its row; whoever inserts it runs the job, the others
-- skip. retry_at says when the time may be claimed again: after a failed attempt with attempts
-- left (the retry), or while running, when the running attempt's time limit has passed (its
-- worker died). NULL means never: succeeded, or out of attempts.
CREATE TABLE gateway.job_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job            text NOT NULL,
    scheduled_for  timestamptz NOT NULL,
    manual         boolean NOT NULL DEFAULT false,      -- run by hand (`python -m workers run`)
    status         text NOT NULL,
    attempts       integer NOT NULL DEFAULT 1,
    node           text NOT NULL,                        -- host:pid of the latest attempt
    started_at     timestamptz NOT NULL,                 -- of the latest attempt
    finished_at    timestamptz,
    rows_touched   bigint,
    error          text,                                 -- of the latest failed attempt
    retry_at       timestamptz,
    CONSTRAINT job_runs_one_per_time UNIQUE (job, scheduled_for),
    CONSTRAINT job_runs_status_valid CHECK (status IN ('running', 'succeeded', 'failed')),
    CONSTRAINT job_runs_attempts_positive CHECK (attempts >= 1),
    CONSTRAINT job_runs_finished_unless_running
        CHECK ((status = 'running') = (finished_at IS NULL)),
    CONSTRAINT job_runs_succeeded_is_final
        CHECK (status <> 'succeeded' OR (rows_touched IS NOT NULL AND retry_at IS NULL)),
    CONSTRAINT job_runs_failed_has_error CHECK (status <> 'failed' OR error IS NOT NULL)
);

-- Recent runs of every job, newest first (recent_runs without a job; the per-job listing uses
-- the unique index).
CREATE INDEX idx_job_runs_scheduled_for ON gateway.job_runs (scheduled_for DESC);

-- ---------------------------------------------------------------------------------------------
-- Archives: the source's columns (with its defaults and NOT NULLs) plus archived_at. Rows move
-- by column name, so a column added to a source must be added to its archive (in the same
-- migration); until it is, archiving that source fails with a message naming the column, and
-- nothing moves. Foreign keys to users mirror the sources', so erasing an account treats
-- archived rows as it treats live ones.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE analyst.notifications_archive (
    LIKE analyst.notifications INCLUDING DEFAULTS,
    archived_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_archive_pkey PRIMARY KEY (id),
    CONSTRAINT notifications_archive_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES analyst.users (id) ON DELETE CASCADE
);
CREATE INDEX idx_notifications_archive_user_id
    ON analyst.notifications_archive (user_id, created_at DESC);

CREATE TABLE analyst.support_tickets_archive (
    LIKE analyst.support_tickets INCLUDING DEFAULTS,
    archived_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT support_tickets_archive_pkey PRIMARY KEY (id),
    CONSTRAINT support_tickets_archive_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES analyst.users (id),
    CONSTRAINT support_tickets_archive_assigned_to_fkey FOREIGN KEY (assigned_to)
        REFERENCES analyst.users (id) ON DELETE SET NULL,
    CONSTRAINT support_tickets_archive_resolved_by_fkey FOREIGN KEY (resolved_by)
        REFERENCES analyst.users (id) ON DELETE SET NULL
);
CREATE INDEX idx_support_tickets_archive_user_id
    ON analyst.support_tickets_archive (user_id, created_at DESC);
CREATE INDEX idx_support_tickets_archive_assigned_to
    ON analyst.support_tickets_archive (assigned_to) WHERE assigned_to IS NOT NULL;
CREATE INDEX idx_support_tickets_archive_resolved_by
    ON analyst.support_tickets_archive (resolved_by) WHERE resolved_by IS NOT NULL;

-- The source's columns, quoted and comma-separated in the source's order, for an
-- INSERT INTO archive (archived_at, <these>) SELECT $1, <these> FROM moved. Raises when the
-- archive lacks any of them, rather than letting a move drop a column's values.
CREATE OR REPLACE FUNCTION analyst.archive_columns(p_source regclass, p_archive regclass)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_columns text;
    v_missing text;
BEGIN
    SELECT string_agg(quote_ident(s.attname), ', ' ORDER BY s.attnum),
           string_agg(s.attname, ', ' ORDER BY s.attnum) FILTER (WHERE a.attname IS NULL)
      INTO v_columns, v_missing
      FROM pg_attribute s
      LEFT JOIN pg_attribute a
        ON a.attrelid = p_archive AND a.attname = s.attname AND NOT a.attisdropped
     WHERE s.attrelid = p_source AND s.attnum > 0 AND NOT s.attisdropped;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION '% lacks column(s) % of %', p_archive, v_missing, p_source
            USING HINT = 'add them to the archive in the migration that added them to the source';
    END IF;
    RETURN v_columns;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Archiving: one statement per move (DELETE ... RETURNING feeding the INSERT), so a row is
-- either still in the source or in the archive, never both and never neither. Each returns how
-- many rows moved. p_now is the caller's "now" (the scheduler's clock), so the cut-off is
-- testable; archived_at is set to it.
-- ---------------------------------------------------------------------------------------------

-- Read notifications (read_at set, or status 'read') created more than 30 days before p_now.
CREATE OR REPLACE FUNCTION analyst.archive_read_notifications(p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_columns text := analyst.archive_columns('analyst.notifications',
                                              'analyst.notifications_archive');
    v_moved integer;
BEGIN
    EXECUTE format($move$
        WITH moved AS (
            DELETE FROM analyst.notifications
             WHERE (read_at IS NOT NULL OR status = 'read')
               AND created_at < $1 - interval '30 days'
            RETURNING *
        )
        INSERT INTO analyst.notifications_archive (archived_at, %1$s)
        SELECT $1, %1$s FROM moved
    $move$, v_columns) USING p_now;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    RETURN v_moved;
END;
$$;

-- Tickets with status 'closed' whose closed_at is more than 60 days before p_now. A closed
-- ticket without closed_at has no age and stays.
CREATE OR REPLACE FUNCTION analyst.archive_closed_tickets(p_now timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_columns text := analyst.archive_columns('analyst.support_tickets',
                                              'analyst.support_tickets_archive');
    v_moved integer;
BEGIN
    EXECUTE format($move$
        WITH moved AS (
            DELETE FROM analyst.support_tickets
             WHERE status = 'closed'
               AND closed_at < $1 - interval '60 days'
            RETURNING *
        )
        INSERT INTO analyst.support_tickets_archive (archived_at, %1$s)
        SELECT $1, %1$s FROM moved
    $move$, v_columns) USING p_now;
    GET DIAGNOSTICS v_moved = ROW_COUNT;
    RETURN v_moved;
END;
$$;
