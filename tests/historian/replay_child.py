"""Replays a spool into a database one record per transaction; the kill -9 test runs it."""

from __future__ import annotations

import sys
from pathlib import Path

from historian.ingest import Ingest, connect, replay
from historian.schema import storage_mode
from historian.spool import Spool


def main(spool_dir: str, db_url: str) -> None:
    """Replay everything, one record at a time, so a kill lands between records."""
    spool = Spool(Path(spool_dir), max_bytes=1 << 30)
    conn = connect(db_url)
    ingest = Ingest(conn, storage_mode(conn))
    try:
        while replay(ingest, spool, max_records=1):
            pass
    finally:
        ingest.close()
        spool.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
