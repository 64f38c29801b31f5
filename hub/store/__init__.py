"""Queries, one module per aggregate. Plain SQL, parameters always bound.

Every function takes the connection of a transaction opened by `hub.db`; the
caller decides whether it is a tenant or a system transaction.
"""
