"""Postgres storage: schema migrations, roles, and the repositories of alphafactory.

Modules (nothing connects at import; pass a psycopg connection to every function):

- ``admin``: ``bootstrap_database`` (roles, database) and ``prepare_database`` (+ migrate)
- ``migrate``: versioned SQL files in ``storage/migrations``
- ``db``: ``open_pool`` and the value checks shared by the repositories
- ``macro``, ``market``: point-in-time stores and as-of reads
- ``factors``: factors, evaluations, alpha pools
- ``requests``: generation requests and their candidates (when is a request complete)
- ``allocations``: target positions (read by trading systems through schema ``trading``)
- ``ledger``, ``outbox``, ``dead_letters``: idempotency and messaging support
- ``errors``: ``StorageError`` and its subclasses
"""
