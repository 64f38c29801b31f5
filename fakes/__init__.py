"""Stand-ins for what lies outside the machine, shared by tests/ and bench/:
an OpenAI-compatible model server (openai.py), LiveKit's server API
(livekit.py), and a caller on a voice socket (voice_line.py).

Not part of the product: pyproject's packages.find installs only hub,
http_api and agents_runtime, so this package runs from a checkout only.

Each fake server is its state plus `app()`, a plain aiohttp application,
and a `url` set by whoever serves it. The tests serve it with
pytest-aiohttp's `aiohttp_server` (tests/conftest.py's `fake` and `livekit`
fixtures); everything else (the benchmarks, a hub run in a thread) with
`fakes.serve.served`.
"""
