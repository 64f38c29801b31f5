"""The embedded PostgreSQL of the default mode, from the `pgserver` package.

pgserver keeps one server per data directory: the first process starts it, later
ones (`python -m hub migrate`, `token`, a second `serve`) attach to it, and it
stops when the last of them exits.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

_servers: dict[Path, object] = {}


def embedded_database_url(data_dir: Path) -> str:
    import pgserver  # imported here: the scaled-out mode never needs it

    # pgserver narrates every initdb and pg_ctl call at INFO; keep its warnings only.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    pgdata = (data_dir / "pg").resolve()
    if pgdata not in _servers:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _servers[pgdata] = pgserver.get_server(pgdata, cleanup_mode="stop")
        log.info('{"event":"embedded_postgres","pgdata":"%s"}', pgdata)
    return _servers[pgdata].get_uri()
