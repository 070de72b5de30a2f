"""TOMP-API 1.6 booking operator (entry point ``tomp`` in ``mobility.booking_operators``)."""

from adapters.tomp.operator import TompBookingOperator

__all__ = ["TompBookingOperator"]
