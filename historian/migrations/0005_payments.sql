-- Recharge orders sent to WeChat Pay or Alipay, one per out_trade_no, bound to the meter's
-- merchant. A provider callback marks its order paid in the same transaction as the ledger
-- posting; the provider's transaction id is unique, so a payment is never applied twice.
CREATE TABLE payment_orders (
    id              bigserial   PRIMARY KEY,
    out_trade_no    text        NOT NULL UNIQUE,
    meter           text        NOT NULL,
    merchant        text        NOT NULL,
    provider        text        NOT NULL CHECK (provider IN ('wechat', 'alipay')),
    amount_fen      bigint      NOT NULL CHECK (amount_fen > 0),
    state           text        NOT NULL CHECK (state IN ('created', 'paid', 'closed')),
    payload         jsonb       NOT NULL,       -- the request we would send to the provider
    provider_txn_id text,                       -- WeChat transaction_id, Alipay trade_no
    created_at      timestamptz NOT NULL,
    paid_at         timestamptz,
    CHECK ((state = 'paid') = (provider_txn_id IS NOT NULL AND paid_at IS NOT NULL))
);
CREATE UNIQUE INDEX payment_orders_provider_txn ON payment_orders (provider, provider_txn_id)
    WHERE provider_txn_id IS NOT NULL;
CREATE INDEX payment_orders_meter ON payment_orders (meter, created_at);
CREATE INDEX payment_orders_open ON payment_orders (created_at) WHERE state = 'created';
