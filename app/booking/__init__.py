"""Unified booking (issue 5): quotes, the booking state machine, operators' booking APIs."""
