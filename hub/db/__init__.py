"""asyncpg pool, migrations and the transaction helper every query runs in."""

from hub.db.database import Database, connect

__all__ = ["Database", "connect"]
