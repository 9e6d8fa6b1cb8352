-- Failed login/OTP attempts are counted on every login: a partial index keeps that lookup
-- proportional to the failures of an account or address, not to all of its logins.
CREATE INDEX idx_auth_attempts_failures
    ON gateway.auth_attempts (scope, subject, action, at) WHERE NOT succeeded;
