-- Creator realm, part 12: creator.live_claims becomes the outbox of REST-committed live events,
-- so none is lost to a deaf or dead gateway. announce() writes one row per event (kind, the
-- row it is about, the reader of a `read`) in the writing transaction and NOTIFYs its key;
-- a gateway claims it (claimed_at), publishes, then stamps published_at. Rows nobody claimed
-- (a NOTIFY heard by no listener) are claimed by the resync after a LISTEN reconnect or by the
-- periodic sweep; rows claimed but never published (the claimer died) are claimed again once
-- their lease is over (realms/creator/relay.py). Kept a day (purge_live_claims()).
-- Relies on 3011.

DELETE FROM creator.live_claims;  -- old-style claims (kind:id keys) carry no event

ALTER TABLE creator.live_claims
    ADD COLUMN kind          varchar(20) NOT NULL,
    ADD COLUMN ref_id        uuid NOT NULL,
    ADD COLUMN user_id       uuid,
    ADD COLUMN claimed_at    timestamptz,
    ADD COLUMN published_at  timestamptz,
    ADD CONSTRAINT live_claims_kind_valid CHECK (kind IN ('message', 'unlock', 'tip', 'read')),
    ADD CONSTRAINT live_claims_published_after_claim
        CHECK (published_at IS NULL OR claimed_at IS NOT NULL);

-- What the sweep looks for: events not yet published.
CREATE INDEX idx_live_claims_unpublished ON creator.live_claims (created_at)
    WHERE published_at IS NULL;
