"""Which operators this deployment aggregates and keeping them in sync."""
