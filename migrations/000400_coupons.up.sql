-- First-come coupons (Redis gate, Postgres the source of
-- truth), their reconciliation, and the coupon exchange job.

CREATE TABLE coupon (
    id              bigserial PRIMARY KEY,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name            text NOT NULL CHECK (name <> '' AND length(name) <= 200),
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    amount_type     text NOT NULL CHECK (amount_type IN ('FIX', 'RATE')),
    amount          int NOT NULL CHECK (amount > 0 AND (amount_type <> 'RATE' OR amount <= 100)),
    total_quantity  int NOT NULL CHECK (total_quantity >= 0),
    -- Re-synced from COUNT(*) of coupon_issue by coupon_reconcile:
    -- the persist job does not touch it, so issuing never contends on this row.
    issued_quantity int NOT NULL DEFAULT 0 CHECK (issued_quantity >= 0),
    status          text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'INACTIVE')),
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE coupon_issue (
    id           bigserial PRIMARY KEY,
    coupon_id    bigint NOT NULL REFERENCES coupon,
    member_id    bigint NOT NULL CHECK (member_id > 0),
    issued_at    timestamptz NOT NULL DEFAULT now(),
    used_at      timestamptz,
    exchanged_at timestamptz,
    UNIQUE (coupon_id, member_id)
);

-- The exchange job walks one coupon's unused, unexchanged issues in id order.
CREATE INDEX coupon_issue_exchangeable_idx ON coupon_issue (coupon_id, id)
    WHERE used_at IS NULL AND exchanged_at IS NULL;

CREATE TABLE failed_coupon_issue (
    id          bigserial PRIMARY KEY,
    coupon_code text NOT NULL,
    member_id   bigint NOT NULL,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX failed_coupon_issue_code_idx ON failed_coupon_issue (coupon_code, member_id);

CREATE TABLE coupon_notification (
    id         bigserial PRIMARY KEY,
    member_id  bigint NOT NULL,
    coupon_id  bigint NOT NULL REFERENCES coupon,
    message    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (member_id, coupon_id)
);
