-- Issue 21 item 1: subscription_tiers.priority_support changes how tickets are handled.
-- support_tickets.priority_support records, when the ticket is opened, whether its user then
-- held an active subscription on a tier with priority support. Staff's queue puts those
-- tickets first within each priority. A snapshot rather than a live join, so the queue's
-- order (and its keyset cursor) does not move when a subscription changes later.

ALTER TABLE analyst.support_tickets
    ADD COLUMN priority_support boolean NOT NULL DEFAULT false;
-- Archived tickets keep every column of the live table (docs/jobs.md).
ALTER TABLE analyst.support_tickets_archive
    ADD COLUMN priority_support boolean NOT NULL DEFAULT false;

-- The staff queue: open tickets by priority, priority support first, oldest first.
CREATE INDEX idx_support_tickets_queue
    ON analyst.support_tickets (
        (CASE priority WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END),
        (NOT priority_support), created_at, id);
