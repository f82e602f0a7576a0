"""The engine against PostgreSQL, a real tag table, the real ledger and the real outbox."""

from __future__ import annotations

from server.commands import derived_key
from server.prepaid.records import Transaction, TransactionFilter
from server.tags import Batch
from tests.prepaid_settlement.conftest import Rig

HOUR = 3600.0


def deductions(rig: Rig, short: str) -> list[Transaction]:
    found = rig.ledger.transactions(
        TransactionFilter(meter=rig.id(short), types=("energy_deduction",))
    )
    return list(found)


def test_energy_batch_posts_a_deduction_and_moves_the_cursor(rig):
    rig.fund("E0003", 1000)
    first = rig.reading("E0003", flat=100.0)
    assert (first.started, first.postings) == (1, 0)  # a first reading only sets the base
    rig.clock.advance(HOUR)
    report = rig.reading("E0003", flat=110.0)  # 10 kWh × 0.60 yuan = 600 fen
    assert (report.postings, report.charged_fen) == (1, 600)
    assert rig.ledger.balance(rig.id("E0003")) == 400
    cursor = rig.engine.store.get(rig.id("E0003"))
    assert cursor.registers == (0, 0, 11000, 0)
    assert cursor.source_ts == rig.clock.time()
    (posted,) = deductions(rig, "E0003")
    assert posted.provider == "settlement"
    assert posted.provider_event_id == f"{rig.id('E0003')}:{rig.clock.time()!r}"


def test_the_same_batch_again_charges_nothing(rig):
    rig.fund("E0003", 1000)
    rig.reading("E0003", flat=100.0)
    rig.clock.advance(HOUR)
    at = rig.clock.time()
    rig.reading("E0003", flat=110.0, at=at)
    again = rig.reading("E0003", flat=110.0, at=at)
    older = rig.reading("E0003", flat=105.0, at=at - 60)
    assert (again.stale, again.postings, older.stale, older.postings) == (1, 0, 1, 0)
    assert len(deductions(rig, "E0003")) == 1
    assert rig.ledger.balance(rig.id("E0003")) == 400


def test_sub_fen_remainders_are_carried(rig):
    rig.fund("E0003", 1000)
    rig.reading("E0003", flat=0.0)
    for _ in range(5):
        rig.clock.advance(60)
        rig.reading(
            "E0003", flat=round(rig.engine.store.get(rig.id("E0003")).registers[2] / 100 + 0.01, 2)
        )
    # 5 × 0.01 kWh × 0.6 yuan = 3 fen, charged as the 0.6-fen pieces add up
    assert rig.ledger.balance(rig.id("E0003")) == 997
    assert rig.engine.store.get(rig.id("E0003")).carry_e4 == 0


def test_crossing_the_credit_limit_opens_the_relay_once_in_the_same_transaction(rig):
    rig.fund("E0003", 100)
    rig.reading("E0003", flat=50.0)
    rig.clock.advance(HOUR)
    changes = rig.table.apply(_batch(rig, "E0003", flat=55.0))  # 300 fen: balance −200
    conn = rig.engine._conn
    with conn.cursor() as cur:
        report = rig.engine.settle_in(cur, changes)
        assert [c.commands[0].kind for c in report.commands] == ["relay_open"]
        cur.execute("SELECT count(*) FROM commands WHERE meter = %s", (rig.id("E0003"),))
        assert cur.fetchone()[0] == 1
    conn.rollback()  # the posting and its command go together, or not at all
    assert rig.commands("E0003") == []
    assert deductions(rig, "E0003") == []
    assert rig.ledger.balance(rig.id("E0003")) == 100
    report = rig.engine.on_batch(changes)
    (command,) = rig.commands("E0003")
    (posted,) = deductions(rig, "E0003")
    assert command.kind == "relay_open"
    assert command.params == {}
    request = rig.outbox.request(command.request_id)
    assert request.key == derived_key("prepaid", rig.id("E0003"), posted.id)
    rig.clock.advance(HOUR)
    more = rig.reading("E0003", flat=56.0)  # still below: no second open
    assert more.postings == 1 and more.commands == []
    assert [c.kind for c in rig.commands("E0003")] == ["relay_open"]


def test_a_recharge_above_the_threshold_closes_the_relay(rig):
    rig.fund("E0003", 100)
    rig.reading("E0003", flat=50.0)
    rig.clock.advance(HOUR)
    rig.reading("E0003", flat=55.0)  # balance −200: opened
    conn = rig.connect()
    with conn, conn.cursor() as cur:
        low = rig.ledger.post(
            "counter_recharge",
            meter=rig.id("E0003"),
            amount_fen=100,
            operator="t",
            channel="hmi",
            cur=cur,
        )
        assert rig.engine.on_recharge(rig.id("E0003"), low, cur=cur) is None  # −100: not enough
        enough = rig.ledger.post(
            "counter_recharge",
            meter=rig.id("E0003"),
            amount_fen=100,
            operator="t",
            channel="hmi",
            cur=cur,
        )
        closing = rig.engine.on_recharge(rig.id("E0003"), enough, cur=cur)
    assert enough.balance_after_fen == 0
    assert closing is not None and closing.commands[0].kind == "relay_close"
    kinds = [c.kind for c in sorted(rig.commands("E0003"), key=lambda c: c.id)]
    assert kinds == ["relay_open", "relay_close"]
    assert not rig.engine.store.get(rig.id("E0003")).relay_held_open


def test_forced_mode_keeps_the_relay_closed_until_it_expires(rig):
    rig.fund("E0003", 100)
    rig.reading("E0003", flat=50.0)
    rig.outbox.enqueue(
        "forced_mode_on",
        {"relay": "closed", "reason": "cold store", "expires_at": rig.clock.time() + 2 * HOUR},
        rig.id("E0003"),
        actor="op",
        channel="hmi",
    )
    rig.clock.advance(HOUR)
    report = rig.reading("E0003", flat=55.0)
    assert report.postings == 1 and report.commands == []
    rig.clock.advance(2 * HOUR)  # expired: prepaid control is back
    report = rig.reading("E0003", flat=55.5)
    assert [e.commands[0].kind for e in report.commands] == ["relay_open"]


def test_postpaid_and_unbilled_meters_are_never_settled_or_tripped(rig):
    rig.fund("E0002", 0)
    for short in ("E0002", "D0002"):
        rig.reading(short, flat=100.0)
        rig.clock.advance(HOUR)
        report = rig.reading(short, flat=900.0)
        assert report.readings == 0
        assert rig.commands(short) == []
        assert rig.engine.store.get(rig.id(short)) is None
    assert rig.ledger.balance(rig.id("E0002")) == 0


def test_a_prepaid_meter_without_a_wallet_is_never_tripped(rig):
    rig.reading("E0001", flat=100.0)
    rig.clock.advance(HOUR)
    report = rig.reading("E0001", flat=150.0)
    assert report.postings == 0 and report.commands == []
    assert rig.engine.store.get(rig.id("E0001")).registers[2] == 15000


def test_negative_and_implausible_readings_are_flagged_not_charged(rig):
    rig.fund("E0003", 10_000)
    rig.reading("E0003", flat=100.0, peak=10.0)
    rig.clock.advance(HOUR)
    report = rig.reading("E0003", flat=90.0, peak=11.0)  # flat went backwards
    assert report.flagged == 1 and report.charged_fen == 60  # the peak kWh only
    rig.clock.advance(HOUR)
    report = rig.reading("E0003", flat=5000.0, peak=11.0)  # 22 kW meter: 4,900 kWh in 2 h
    assert report.flagged == 1 and report.charged_fen == 0
    kinds = [(a.bucket, a.kind) for a in rig.engine.store.anomalies(rig.id("E0003"))]
    assert kinds == [("flat", "negative"), ("flat", "implausible")]
    assert rig.engine.store.get(rig.id("E0003")).registers == (0, 1100, 10000, 0)
    assert rig.ledger.balance(rig.id("E0003")) == 10_000 - 60


def test_rebase_after_a_meter_replacement_charges_from_the_new_base(rig):
    rig.fund("E0003", 10_000)
    rig.reading("E0003", flat=800.0)
    rig.clock.advance(HOUR)
    rig.engine.rebase(
        rig.id("E0003"),
        [0.0, 0.0, 0.5, 0.0],
        at=rig.clock.time(),
        actor="fitter",
        channel="hmi",
        reason="meter replaced",
    )
    rig.clock.advance(HOUR)
    report = rig.reading("E0003", flat=2.5)  # 2 kWh on the new meter
    assert (report.flagged, report.charged_fen) == (0, 120)
    assert [a.kind for a in rig.engine.store.anomalies(rig.id("E0003"))] == ["rebase"]


def test_a_rollover_of_the_register_is_charged(rig):
    rig.fund("E0003", 10_000)
    top = (2**32 - 100) / 100  # CT 1, PT 1: the register wraps at 42,949,672.96 kWh
    rig.reading("E0003", flat=top)
    rig.clock.advance(HOUR)
    report = rig.reading("E0003", flat=1.0)  # 1 kWh to the top, 1 kWh after the wrap
    assert (report.flagged, report.charged_fen) == (0, 120)
    assert [a.kind for a in rig.engine.store.anomalies(rig.id("E0003"))] == ["rollover"]


def _batch(rig: Rig, short: str, **energy: float) -> Batch:
    values = {f"e_{b}": [energy.get(b, 0.0)] for b in ("sharp", "peak", "flat", "valley")}
    return Batch("energy", rig.table.rows_for([rig.id(short)]), values, source_ts=rig.clock.time())
