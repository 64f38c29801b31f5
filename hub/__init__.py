"""Syntera hub: the core (config, database, store, auth, events) and the real-time side."""
