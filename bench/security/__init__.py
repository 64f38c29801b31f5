"""The security sweep: attacks on a running hub, each a module with
`run(target, bounded) -> Result` (docs/security.md). `python -m bench.security`
runs them all; tests/test_security.py runs their bounded versions."""
