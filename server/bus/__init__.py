"""The Redis bus for scale-out: readings, commands and gateway membership on Redis Streams.

How it fits together
--------------------
`parkgrid run --acquisition-workers N` splits the gateways over N worker processes:

* each worker runs a `WorkerHeartbeat` (a deadline in the `workers` sorted set, renewed
  every `ttl / 3`) and polls only `heartbeat.owned()`;
* the core runs a `Coordinator`, which assigns gateways to the live workers by
  rendezvous hashing and publishes the assignment with a growing generation, so a dead
  worker's gateways move within `ttl + check_interval` and no other gateway moves;
* workers publish decoded batches with a `ReadingPublisher`; the core reads them with a
  `ReadingConsumer` (consumer group `core`) and acknowledges each after it is applied;
* the core routes a meter command with `CommandSender.send_to_owner`; the owner's
  `CommandReceiver` carries it out and adds the `Outcome` in the same transaction as
  the acknowledgement; the core reads outcomes with an `OutcomeConsumer`.

Every Redis call goes through a `BusConnection`, which waits out a restart or failover
with backoff and logs once when Redis goes away and once when it is back. Delivery is
at least once everywhere; applying a batch twice changes nothing, and a redelivered
older batch cannot roll a value back (`MeterBatch.to_batch` skips older rows).

Across hosts
------------
Nothing in the design assumes one host. A worker on another machine is started with the
same site and the same Redis URL; it joins by heartbeating and gets its share at the
next coordinator check. Worker names must be unique across hosts (host name plus
index, say). Liveness compares a worker's heartbeat deadline with the coordinator's
clock, so hosts need synchronised clocks (NTP); keep the skew well under `ttl`.

Redis Sentinel: build the client from the Sentinel's master discovery and hand it to
`BusConnection` as usual::

    from redis.asyncio.sentinel import Sentinel

    sentinel = Sentinel([("10.0.0.5", 26379), ("10.0.0.6", 26379)], socket_timeout=1.0)
    bus = BusConnection(sentinel.master_for("parkgrid", db=0, decode_responses=False))

On failover the client's connections fail or hit the demoted master (READONLY); both
count as an outage, and the next attempt asks the Sentinels for the new master.
Entries acknowledged on the old master but not yet replicated can come back as pending
or be lost with it: replication is asynchronous, so run `min-replicas-to-write 1` and
`appendonly yes` (`appendfsync everysec`) on the Redis servers.

Redis Cluster: every key of a park carries the hash tag `{park}` (see `BusKeys`), so
the readings stream, its consumer group, the command and outcome streams, the
dead-letter stream, the worker set and the assignment live in one slot. That is what
lets one transaction dead-letter and acknowledge a reading, publish an outcome and
acknowledge its command, or move a departed worker's commands and delete its stream.
All other calls are single-key (XADD, XREADGROUP on one stream, XACK, XAUTOCLAIM,
XPENDING, XINFO GROUPS, XTRIM, ZADD, ZRANGEBYSCORE, ZREMRANGEBYSCORE, GET, SET with
WATCH), and nothing uses SCAN or KEYS, which a cluster runs per node. Use
`redis.asyncio.cluster.RedisCluster` for the client. One park is one slot, so one shard
carries it: at ~300 entries/s that is far below what a single shard takes; a second
park gets its own tag and can land on another shard.
"""

from server.bus.codec import CodecError, MeterBatch, decode_batch, encode_batch
from server.bus.commands import (
    Command,
    CommandError,
    CommandFailed,
    CommandReceiver,
    CommandSender,
    Outcome,
    OutcomeConsumer,
)
from server.bus.connection import Backoff, BusConnection, open_redis
from server.bus.group import GroupConsumer, Rejected
from server.bus.keys import BusKeys
from server.bus.membership import Assignment, Coordinator, WorkerHeartbeat, assign
from server.bus.streams import ReadingConsumer, ReadingPublisher, StreamSizing

__all__ = [
    "Assignment",
    "Backoff",
    "BusConnection",
    "BusKeys",
    "CodecError",
    "Command",
    "CommandError",
    "CommandFailed",
    "CommandReceiver",
    "CommandSender",
    "Coordinator",
    "GroupConsumer",
    "MeterBatch",
    "Outcome",
    "OutcomeConsumer",
    "ReadingConsumer",
    "ReadingPublisher",
    "Rejected",
    "StreamSizing",
    "WorkerHeartbeat",
    "assign",
    "decode_batch",
    "encode_batch",
    "open_redis",
]
