"""The booking state machine, exhaustively: every (state, event) pair is legal or a typed error."""

from __future__ import annotations

import itertools

import pytest

from app.booking.states import (
    ACTIVE,
    TERMINAL,
    BookingEvent,
    BookingState,
    IllegalTransition,
    allowed_events,
    transition,
)

S, E = BookingState, BookingEvent

# The diagram, written out independently of the module's table.
LEGAL = {
    S.PENDING: {E.CONFIRM: S.CONFIRMED, E.REJECT: S.REJECTED, E.CANCEL: S.CANCELLED,
                E.EXPIRE: S.EXPIRED, E.FAIL: S.FAILED},
    S.CONFIRMED: {E.START: S.STARTED, E.CANCEL: S.CANCELLED, E.EXPIRE: S.EXPIRED,
                  E.FAIL: S.FAILED},
    S.STARTED: {E.PAUSE: S.PAUSED, E.FINISH: S.FINISHED, E.FAIL: S.FAILED},
    S.PAUSED: {E.RESUME: S.STARTED, E.FINISH: S.FINISHED, E.FAIL: S.FAILED},
}  # fmt: skip


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)))
def test_every_pair_is_either_the_diagram_s_step_or_a_typed_error(
    state: BookingState, event: BookingEvent
) -> None:
    expected = LEGAL.get(state, {}).get(event)
    if expected is not None:
        assert transition(state, event) is expected
        assert event in allowed_events(state)
    else:
        with pytest.raises(IllegalTransition) as refused:
            transition(state, event)
        assert refused.value.code == "ILLEGAL_TRANSITION"
        assert refused.value.state is state and refused.value.event is event
        assert event not in allowed_events(state)


def test_active_and_terminal_states() -> None:
    assert set(LEGAL) == ACTIVE
    assert set(S) - set(LEGAL) == TERMINAL
    for state in TERMINAL:
        assert allowed_events(state) == frozenset()
        with pytest.raises(IllegalTransition, match="it is over"):
            transition(state, E.CANCEL)


def test_a_whole_trip_with_pauses() -> None:
    state = S.PENDING
    for event in [E.CONFIRM, E.START, E.PAUSE, E.RESUME, E.PAUSE, E.RESUME, E.FINISH]:
        state = transition(state, event)
    assert state is S.FINISHED
    with pytest.raises(IllegalTransition, match="FINISHED booking cannot finish"):
        transition(state, E.FINISH)  # ending twice is an error, not a no-op


def test_a_rider_is_told_only_what_a_rider_can_do() -> None:
    with pytest.raises(IllegalTransition) as refused:
        transition(S.PAUSED, E.PAUSE)
    message = refused.value.message
    assert "FINISH" in message and "RESUME" in message
    assert "FAIL" not in message  # the system's doing, not the rider's
