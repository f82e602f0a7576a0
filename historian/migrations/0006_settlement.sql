-- Prepaid settlement: the settled register cursor of each meter, and flagged readings.
-- Registers are primary centi-kWh (0.01 kWh). Times are Unix seconds as double precision
-- so that a reading's source timestamp compares exactly with the one stored here.
CREATE TABLE prepaid_settlement_cursors (
    meter            text             PRIMARY KEY,
    sharp_centi_kwh  bigint           NOT NULL CHECK (sharp_centi_kwh >= 0),
    peak_centi_kwh   bigint           NOT NULL CHECK (peak_centi_kwh >= 0),
    flat_centi_kwh   bigint           NOT NULL CHECK (flat_centi_kwh >= 0),
    valley_centi_kwh bigint           NOT NULL CHECK (valley_centi_kwh >= 0),
    -- the sub-fen remainder carried to the next settlement, in 10^-4 fen
    carry_e4         bigint           NOT NULL DEFAULT 0 CHECK (carry_e4 >= 0 AND carry_e4 < 10000),
    source_ts        double precision NOT NULL,   -- the last settled reading's source time
    month            integer          NOT NULL,   -- yyyymm (park time) of month_centi_kwh
    month_centi_kwh  bigint           NOT NULL DEFAULT 0 CHECK (month_centi_kwh >= 0),
    relay_held_open  boolean          NOT NULL DEFAULT false,  -- opened by settlement
    updated_at       double precision NOT NULL
);

CREATE TABLE prepaid_settlement_anomalies (
    id          bigserial        PRIMARY KEY,
    meter       text             NOT NULL,
    source_ts   double precision NOT NULL,
    bucket      text             NOT NULL CHECK (bucket IN ('sharp', 'peak', 'flat', 'valley', '')),
    kind        text             NOT NULL CHECK (kind IN (
                    'rollover', 'negative', 'implausible', 'unpriced', 'rebase')),
    previous    bigint,
    reading     bigint,
    recorded_at double precision NOT NULL,
    UNIQUE (meter, source_ts, bucket, kind)
);
CREATE INDEX prepaid_settlement_anomalies_meter ON prepaid_settlement_anomalies (meter, id);
