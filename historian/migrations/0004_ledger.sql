-- The double-entry prepaid ledger: accounts, transactions and their immutable postings.
-- Amounts are integer fen, credit-positive: a wallet's balance is what the tenant holds,
-- a revenue account's is what it earned, and a merchant's cash reads negative (an asset).
CREATE TABLE ledger_accounts (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN (
                    'wallet', 'merchant_cash', 'energy_revenue', 'fee_revenue',
                    'refunds_payable')),
    meter       text,                       -- the wallet's meter; NULL for merchant accounts
    tenant      text        NOT NULL DEFAULT '',
    merchant    text        NOT NULL,
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz,
    CHECK ((kind = 'wallet') = (meter IS NOT NULL)),
    CHECK (kind = 'wallet' OR closed_at IS NULL)
);
-- A meter has at most one open wallet; a merchant has one account of each other kind.
CREATE UNIQUE INDEX ledger_accounts_open_wallet ON ledger_accounts (meter)
    WHERE kind = 'wallet' AND closed_at IS NULL;
CREATE UNIQUE INDEX ledger_accounts_merchant_kind ON ledger_accounts (merchant, kind)
    WHERE kind <> 'wallet';
CREATE INDEX ledger_accounts_meter ON ledger_accounts (meter, id);

CREATE TABLE ledger_transactions (
    id                bigserial   PRIMARY KEY,
    receipt_no        text        NOT NULL UNIQUE,
    type              text        NOT NULL CHECK (type IN (
                          'counter_recharge', 'wechat_recharge', 'alipay_recharge',
                          'reversal', 'refund', 'energy_deduction', 'shared_cost',
                          'property_fee', 'capacity_fee')),
    account_id        bigint      NOT NULL REFERENCES ledger_accounts (id),
    meter             text        NOT NULL,
    merchant          text        NOT NULL,
    amount_fen        bigint      NOT NULL,     -- the signed change to the wallet
    balance_after_fen bigint      NOT NULL,     -- the wallet's balance just after it
    operator          text        NOT NULL,
    channel           text        NOT NULL,
    reason            text        NOT NULL DEFAULT '',
    provider          text,
    provider_event_id text,
    reverses          bigint      UNIQUE REFERENCES ledger_transactions (id),
    invoiced          boolean     NOT NULL DEFAULT false,
    invoiced_at       timestamptz,
    invoiced_by       text,
    created_at        timestamptz NOT NULL,
    UNIQUE (provider, provider_event_id),
    CHECK ((provider IS NULL) = (provider_event_id IS NULL)),
    CHECK ((type = 'reversal') = (reverses IS NOT NULL)),
    CHECK (type <> 'reversal' OR reason <> ''),
    CHECK (invoiced = (invoiced_at IS NOT NULL) AND invoiced = (invoiced_by IS NOT NULL))
);
CREATE INDEX ledger_transactions_meter ON ledger_transactions (meter, id);
CREATE INDEX ledger_transactions_merchant ON ledger_transactions (merchant, id);
CREATE INDEX ledger_transactions_created ON ledger_transactions (created_at);

CREATE TABLE ledger_postings (
    id             bigserial PRIMARY KEY,
    transaction_id bigint    NOT NULL REFERENCES ledger_transactions (id),
    account_id     bigint    NOT NULL REFERENCES ledger_accounts (id),
    amount_fen     bigint    NOT NULL CHECK (amount_fen <> 0)
);
CREATE INDEX ledger_postings_transaction ON ledger_postings (transaction_id);
-- Covers the balance sum, so a wallet's balance is an index-only scan.
CREATE INDEX ledger_postings_account ON ledger_postings (account_id) INCLUDE (amount_fen);

-- Gap-free receipt numbers: one counter per merchant and year, taken in the posting's
-- transaction, so a rolled-back posting gives its number back.
CREATE TABLE ledger_receipt_counters (
    merchant text    NOT NULL,
    year     integer NOT NULL,
    last_no  integer NOT NULL CHECK (last_no > 0),
    PRIMARY KEY (merchant, year)
);

CREATE VIEW ledger_balances AS
    SELECT a.id AS account_id, a.kind, a.meter, a.merchant, a.closed_at,
           COALESCE((SELECT SUM(p.amount_fen) FROM ledger_postings p
                     WHERE p.account_id = a.id), 0)::bigint AS balance_fen
    FROM ledger_accounts a;

CREATE FUNCTION ledger_postings_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_postings are immutable: % refused', TG_OP;
END;
$$;
CREATE TRIGGER ledger_postings_immutable
    BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_are_immutable();

-- A transaction's only change is being marked invoiced, once.
CREATE FUNCTION ledger_transactions_only_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'ledger_transactions are immutable: % refused', TG_OP;
    END IF;
    IF OLD.invoiced OR NOT NEW.invoiced
       OR (to_jsonb(NEW) - 'invoiced' - 'invoiced_at' - 'invoiced_by')
          IS DISTINCT FROM (to_jsonb(OLD) - 'invoiced' - 'invoiced_at' - 'invoiced_by') THEN
        RAISE EXCEPTION 'ledger_transactions are immutable: only marking invoiced once is allowed';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ledger_transactions_row_immutable
    BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_transactions_only_invoice();
CREATE TRIGGER ledger_transactions_no_truncate
    BEFORE TRUNCATE ON ledger_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_are_immutable();

-- An account's only change is being closed, once.
CREATE FUNCTION ledger_accounts_only_close() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'ledger_accounts are permanent: % refused', TG_OP;
    END IF;
    IF OLD.closed_at IS NOT NULL OR NEW.closed_at IS NULL
       OR (to_jsonb(NEW) - 'closed_at') IS DISTINCT FROM (to_jsonb(OLD) - 'closed_at') THEN
        RAISE EXCEPTION 'ledger_accounts are permanent: only closing an open wallet is allowed';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ledger_accounts_row_permanent
    BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_only_close();
CREATE TRIGGER ledger_accounts_no_truncate
    BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_are_immutable();

-- Checked at commit: the postings of every transaction sum to zero.
CREATE FUNCTION ledger_postings_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    SELECT COALESCE(SUM(amount_fen), 0) INTO total
        FROM ledger_postings WHERE transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: its postings sum to % fen',
            NEW.transaction_id, total;
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER ledger_postings_sum_to_zero
    AFTER INSERT ON ledger_postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_postings_balance();
