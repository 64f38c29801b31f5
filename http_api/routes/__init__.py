"""REST resources. Each module declares its routes on the shared table."""

from http_api.routing import Api

api = Api()

# Importing a module registers its routes on `api`.
from http_api.routes import agents, audit, auth  # noqa: E402, F401

__all__ = ["api"]
