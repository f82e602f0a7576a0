-- The durable command outbox: one request (a single meter or a batch) per idempotency key,
-- one command row per meter, and every state change of a command as an event.
CREATE TABLE command_requests (
    id          bigserial   PRIMARY KEY,
    key         text        NOT NULL UNIQUE,    -- idempotency key: the same key is one request
    fingerprint text        NOT NULL,           -- kind + params + meters, to refuse a reused key
    kind        text        NOT NULL,
    params      jsonb       NOT NULL,
    target      jsonb       NOT NULL,           -- how the meters were chosen (area, filter, list)
    meter_count integer     NOT NULL CHECK (meter_count > 0),
    actor       text        NOT NULL,
    channel     text        NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX command_requests_created ON command_requests (created_at);

CREATE TABLE commands (
    id              bigserial   PRIMARY KEY,
    request_id      bigint      NOT NULL REFERENCES command_requests (id),
    meter           text        NOT NULL,
    kind            text        NOT NULL,
    slot            text        NOT NULL,       -- what the command sets; a newer one supersedes
    params          jsonb       NOT NULL,
    state           text        NOT NULL CHECK (state IN (
                        'pending', 'sending', 'sent', 'done',
                        'failed', 'cancelled', 'superseded', 'reissued')),
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer     NOT NULL CHECK (max_attempts > 0),
    next_attempt_at timestamptz NOT NULL,
    lease_owner     text,
    lease_until     timestamptz,
    last_error      text,
    reissue_of      bigint      UNIQUE REFERENCES commands (id),  -- one re-issue per command
    actor           text        NOT NULL,
    channel         text        NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX commands_due ON commands (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX commands_leased ON commands (lease_until) WHERE state IN ('sending', 'sent');
CREATE INDEX commands_open_by_meter ON commands (meter, id)
    WHERE state IN ('pending', 'sending', 'sent');
CREATE INDEX commands_meter ON commands (meter, created_at);
CREATE INDEX commands_request ON commands (request_id, id);
CREATE INDEX commands_state ON commands (state, created_at);
CREATE INDEX commands_forced ON commands (meter, id)
    WHERE kind IN ('forced_mode_on', 'forced_mode_off');

CREATE TABLE command_events (
    id          bigserial   PRIMARY KEY,
    command_id  bigint      NOT NULL REFERENCES commands (id),
    request_id  bigint      NOT NULL REFERENCES command_requests (id),
    meter       text        NOT NULL,
    kind        text        NOT NULL,
    at          timestamptz NOT NULL,
    event       text        NOT NULL,          -- enqueue, claim, resume, sent, confirm, ...
    from_state  text,                          -- NULL for enqueue
    to_state    text        NOT NULL,
    attempt     integer     NOT NULL,
    actor       text        NOT NULL,
    detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX command_events_command ON command_events (command_id, id);
CREATE INDEX command_events_meter ON command_events (meter, at);
CREATE INDEX command_events_at ON command_events (at);
