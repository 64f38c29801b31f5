"""REST resources, one module per resource, each declaring its routes on `api`.

Every module in this package is imported at start-up, so adding a resource is
adding a file.
"""

import importlib
import pkgutil

from http_api.routing import Api

api = Api()

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["api"]
