-- Extensions and schemas every later migration relies on (seed 000, step 1 of its order).
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE SCHEMA IF NOT EXISTS analyst;
CREATE SCHEMA IF NOT EXISTS gateway;

-- update_updated_at_column(): sets updated_at on every UPDATE (seed 000, "Auto-Update Triggers").
CREATE OR REPLACE FUNCTION analyst.update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
