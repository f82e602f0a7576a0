-- Historian storage: readings, energy intervals and meter events, partitioned by time.
-- With the timescaledb extension the tables become hypertables (chunk intervals sized for
-- the data rates); without it they are natively partitioned by month, and
-- historian/schema.py creates partitions ahead and drops old ones on a schedule.
-- Meters are named by their text id, as everywhere else in the schema, so a spooled batch
-- needs no lookup to be written. Every key includes `ts`: partitions require it, and it
-- makes a replayed batch land on ON CONFLICT DO NOTHING instead of a duplicate.
DO $migration$
DECLARE
    timescale boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    tail text := CASE WHEN timescale THEN '' ELSE ' PARTITION BY RANGE (ts)' END;
BEGIN
    -- One wide row per meter per group reading; `vals` follows the catalogue order of the
    -- group's tags (historian_layout), NaN where the reading carried no value.
    EXECUTE 'CREATE TABLE readings ('
        ' ts        timestamptz NOT NULL,'
        ' meter     text        NOT NULL,'
        ' grp       text        NOT NULL,'
        ' quality   bigint      NOT NULL,'
        ' server_ts timestamptz NOT NULL,'
        ' vals      float8[]    NOT NULL,'
        ' CONSTRAINT readings_key UNIQUE (meter, grp, ts))' || tail;
    -- The energy registers at the first reading of each interval (15 min by default);
    -- consumption is the difference between consecutive intervals of a meter.
    EXECUTE 'CREATE TABLE energy_intervals ('
        ' ts         timestamptz NOT NULL,'
        ' meter      text        NOT NULL,'
        ' interval_s integer     NOT NULL CHECK (interval_s > 0),'
        ' read_ts    timestamptz NOT NULL,'
        ' registers  float8[]    NOT NULL,'
        ' CONSTRAINT energy_intervals_key UNIQUE (meter, ts))' || tail;
    -- What happened to a meter: communication changes, command outcomes.
    EXECUTE 'CREATE TABLE meter_events ('
        ' ts        timestamptz NOT NULL,'
        ' meter     text        NOT NULL,'
        ' kind      text        NOT NULL,'
        ' detail    text        NOT NULL DEFAULT '''','
        ' server_ts timestamptz NOT NULL,'
        ' CONSTRAINT meter_events_key UNIQUE (meter, kind, ts))' || tail;
    IF timescale THEN
        PERFORM create_hypertable('readings', by_range('ts', INTERVAL '1 day'),
                                  create_default_indexes => false);
        PERFORM create_hypertable('energy_intervals', by_range('ts', INTERVAL '7 days'),
                                  create_default_indexes => false);
        PERFORM create_hypertable('meter_events', by_range('ts', INTERVAL '30 days'),
                                  create_default_indexes => false);
    END IF;
END
$migration$;

-- Which tag each position of `vals` (readings) and `registers` (energy_intervals) holds.
CREATE TABLE historian_layout (
    grp      text    NOT NULL,
    position integer NOT NULL CHECK (position >= 1),
    tag      text    NOT NULL,
    kind     text    NOT NULL,
    unit     text    NOT NULL,
    PRIMARY KEY (grp, position)
);
