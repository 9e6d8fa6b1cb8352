-- The echo realm's users can be e-mailed (the core's notifications reach them through the
-- realm's contact_sql): an address and whether it was verified.
ALTER TABLE echo.users ADD COLUMN email text;
ALTER TABLE echo.users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
