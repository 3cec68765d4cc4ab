-- Outbound order calls to the third-party order API, at most once
-- per committed row. Each row is inserted in the same transaction as its
-- order_submit job (outbox); the job moves it PENDING → SENDING → APPLIED
-- (or FAILED on a 4xx that no retry can fix).

CREATE TABLE order_request (
    id                  bigserial PRIMARY KEY,
    username            text NOT NULL CHECK (username <> '' AND length(username) <= 100),
    total_price         bigint NOT NULL CHECK (total_price > 0),
    applied_year_month  text NOT NULL CHECK (applied_year_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    status              text NOT NULL DEFAULT 'PENDING'
                        CHECK (status IN ('PENDING', 'SENDING', 'APPLIED', 'FAILED')),
    -- The third party's order id and creation time, set together with APPLIED.
    external_order_id   bigint,
    external_created_at timestamptz,
    -- Attempts that called (or tried to call) the third party.
    attempts            int NOT NULL DEFAULT 0,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- The third party accepts one order per user per month; so do we.
    UNIQUE (username, applied_year_month),
    CHECK ((status = 'APPLIED') = (external_order_id IS NOT NULL))
)
-- Every row is updated twice (SENDING, then APPLIED). No index covers the
-- columns those updates change, and pages keep room for the new versions,
-- so both are HOT updates that touch no index.
WITH (fillfactor = 70);
