"""Scale-out: `parkgrid run --acquisition-workers N` polls the Modbus TCP gateways in N processes.

Split of the work
-----------------
Workers (`python -m server.scaleout.worker`, started by `WorkerPool`) poll the Modbus TCP
gateways; the `Coordinator` in the core gives each gateway to one live worker. The
dial-in side (DTU gateways and direct 4G meters) stays in the core's own `Acquisition`:
devices dial ONE address, and their sessions live in the process that holds the listener.
A worker publishes everything its pipeline sees (tag batches, comm changes, freeze reads,
link events; see `wire.py`); the core's `ReadingConsumer` applies each through the core's
`BatchPipeline` and acknowledges it afterwards, so alarms, prepaid, historian and feeds
see the same ChangeSets as in one process. Commands for worker-polled meters go through
`pool.directory` (a `RemoteDirectory`) to the owning worker; `ChannelExecutor` is unchanged.

Wiring it in `ParkServer` (with `workers >= 1`)::

    table = build_tag_table(site, clock)
    acquisition = Acquisition(site, table, clock=clock, polled_gateways=core_gateways(site), ...)
    #   the core keeps the dial-in listener, the DTU groups and the direct 4G group; it
    #   polls no Modbus TCP gateway itself (those are `worker_gateways(site)`).
    pool = WorkerPool(
        site, table, acquisition.pipeline,
        workers=N, redis_url=settings.redis_url, clock=clock,
        park=<park name for BusKeys, e.g. site.park.id sanitised to [A-Za-z0-9_.-]>,
        local_directory=lambda: acquisition.directory,
    )
    executor = ChannelExecutor(pool.directory, clock=clock, tz=ZoneInfo(site.park.timezone))

    start: await acquisition.start(); await pool.start()   # subscribe consumers before both
    stop:  await pool.stop(); await acquisition.stop()

Optional `WorkerPool` arguments: `gateway_endpoints` (override host:port per gateway),
`heartbeat_ttl` (10 s) and `check_interval` (2 s): a dead worker's gateways move within
`heartbeat_ttl + check_interval`; `command_timeout` (5 s) per remote register read/write;
`request_timeout` and `intervals` passed to each worker's `Acquisition`; `restart` and
`restart_delay` for dead workers. `pool.status()` reports workers, the assignment
generation and what the core applied. Workers are named `w0..w{N-1}` and log to stderr;
each Redis connection is named `parkgrid-{park}-{w0|core}` (CLIENT LIST).
"""

from server.scaleout.options import WorkerOptions
from server.scaleout.pool import WorkerPool, core_gateways, worker_gateways
from server.scaleout.remote import RemoteDirectory

__all__ = [
    "RemoteDirectory",
    "WorkerOptions",
    "WorkerPool",
    "core_gateways",
    "worker_gateways",
]
