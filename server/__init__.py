"""The reference enrollment server: domain rules, store, admin API, device API, PKI, portal.

It never imports `simulators`; the two meet only over PROTOCOL.md.
"""

__version__ = "0.1.0"
