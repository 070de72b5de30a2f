"""How to talk to a *kind* of operator API: contracts, canonical DTOs, implementations, registry.

Nothing here imports ``app``: adapters turn vendor data into the canonical snapshot and stop there.
"""
