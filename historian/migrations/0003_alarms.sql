-- The alarm journal: every transition of every alarm instance, the comment threads, and
-- the operator actions (each also copied to audit_log). All three are append-only, and
-- each row has a unique key so that a replay after an ambiguous commit adds nothing.
CREATE TABLE alarm_transitions (
    id          bigserial        PRIMARY KEY,
    kind        text             NOT NULL,   -- alarm kind label, e.g. undervoltage
    target      text             NOT NULL,   -- meter or gateway id
    scope       text             NOT NULL CHECK (scope IN ('meter', 'gateway')),
    area        text,
    gateway     text,                        -- the meter's gateway, or the gateway itself
    priority    smallint         NOT NULL CHECK (priority BETWEEN 0 AND 3),
    at          timestamptz      NOT NULL,
    seq         integer          NOT NULL CHECK (seq >= 0),  -- order within (kind, target, at)
    event       text             NOT NULL,
    from_state  text             NOT NULL,
    to_state    text             NOT NULL,
    value       double precision,
    limit_value double precision,
    actor       text,                        -- the operator, for acks, shelving and service
    written_at  timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT alarm_transitions_key UNIQUE (kind, target, at, seq)
);
CREATE INDEX alarm_transitions_at ON alarm_transitions (at, id);
CREATE INDEX alarm_transitions_target ON alarm_transitions (target, at);
CREATE INDEX alarm_transitions_gateway ON alarm_transitions (gateway, at);
CREATE INDEX alarm_transitions_area ON alarm_transitions (area, at);

CREATE TABLE alarm_comments (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL,
    target      text        NOT NULL,
    area        text,
    at          timestamptz NOT NULL,
    seq         integer     NOT NULL CHECK (seq >= 0),
    actor       text        NOT NULL,
    body        text        NOT NULL CHECK (length(body) > 0),
    written_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT alarm_comments_key UNIQUE (kind, target, at, seq)
);

CREATE TABLE alarm_actions (
    id          bigserial   PRIMARY KEY,
    key         text        NOT NULL UNIQUE,  -- drawn when the action is taken
    at          timestamptz NOT NULL,
    actor       text        NOT NULL,
    channel     text        NOT NULL,         -- hmi, opcua, api, system, cli
    action      text        NOT NULL,         -- alarm.ack, alarm.shelve, alarm.comment, ...
    kind        text,
    target      text,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX alarm_actions_target ON alarm_actions (target, at);
CREATE INDEX alarm_actions_at ON alarm_actions (at);

CREATE FUNCTION alarm_journal_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;

CREATE TRIGGER alarm_transitions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON alarm_transitions
    FOR EACH STATEMENT EXECUTE FUNCTION alarm_journal_is_append_only();
CREATE TRIGGER alarm_comments_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON alarm_comments
    FOR EACH STATEMENT EXECUTE FUNCTION alarm_journal_is_append_only();
CREATE TRIGGER alarm_actions_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON alarm_actions
    FOR EACH STATEMENT EXECUTE FUNCTION alarm_journal_is_append_only();
