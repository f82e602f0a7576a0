"""The in-test meters behave as the dispatcher tests assume."""

from __future__ import annotations

import pytest

from server.commands import CommandOutbox, ExecutionError
from tests.commands.fake_meters import FakeMeters, Run


def test_fake_meter_reads_back_only_what_landed(
    run: Run, outbox: CommandOutbox, meters: FakeMeters
) -> None:
    command = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    assert run(meters.confirm(command)) is False
    meters.execute_plan["E0001"] = ["drop"]
    run(meters.execute(command))
    assert run(meters.confirm(command)) is False
    run(meters.execute(command))
    assert run(meters.confirm(command)) is True
    assert meters.writes == [command.id, command.id]


def test_fake_meter_faults_are_typed(run: Run, outbox: CommandOutbox, meters: FakeMeters) -> None:
    command = outbox.enqueue("relay_open", {}, "E0001", actor="op", channel="hmi").commands[0]
    meters.execute_plan["E0001"] = ["refuse", "reject"]
    with pytest.raises(ExecutionError) as refused:
        run(meters.execute(command))
    assert refused.value.retryable
    with pytest.raises(ExecutionError) as rejected:
        run(meters.execute(command))
    assert not rejected.value.retryable
