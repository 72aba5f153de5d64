"""The composition root: the ``alphafactory`` console script and every service it runs.

It is the only package that builds settings, opens the I/O edges (Kafka, Postgres, Redis,
Triton) and wires them to the domain core; nothing imports it (tests/test_packaging.py
enforces the layering).
"""
