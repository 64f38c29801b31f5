"""The security sweep, every attack at full size, against a hub on a scratch
database (docs/security.md).

    python -m bench.security [--bounded] [--only jwt,keys,...]

Checks: cross-tenant (every route, every verb, another company's ids), jwt,
keys (publishable-key misuse), flood (Socket.IO), uploads (bombs, broken and
hostile files), injection (every text field). `--bounded` runs the versions
the test suite runs (tests/test_security.py). Each check prints what it
found and what it noted; the exit status is 1 if any check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack

from aiohttp.test_utils import TestClient

from bench.common import hub_client, scratch_database
from bench.security.suite import CHECKS, run_check


async def main(names: list[str], bounded: bool) -> int:
    failed = []
    async with scratch_database("syntera_security") as url, AsyncExitStack() as hubs:

        async def start_hub(**overrides) -> TestClient:
            return await hubs.enter_async_context(hub_client(url, **overrides))

        for name in names:
            started = time.perf_counter()
            result = await run_check(CHECKS[name], start_hub, bounded)
            print(f"{result.report()}\n  ({time.perf_counter() - started:.1f} s)\n", flush=True)
            if not result.ok:
                failed.append(name)
    print("security sweep:", "FAILED: " + ", ".join(failed) if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bounded", action="store_true", help="the test suite's sizes")
    parser.add_argument("--only", help="comma-separated checks: " + ", ".join(CHECKS))
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(CHECKS)
    unknown = [n for n in chosen if n not in CHECKS]
    if unknown:
        parser.error(f"unknown checks {unknown}; choose from {', '.join(CHECKS)}")
    sys.exit(asyncio.run(main(chosen, args.bounded)))
