"""TOMP-API 1.6 booking operator (placeholder until the implementation lands)."""
