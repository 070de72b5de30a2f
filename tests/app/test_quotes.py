"""Trip estimates, ranking and offer tokens, without a database. Expected figures are worked out
here from the inputs (geopy for distances, a segment walker for prices), never by the code
under test."""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from geopy.distance import geodesic

from adapters.dto import PricingSegment
from adapters.gbfs.pricing import PriceBreakdown
from app.booking.estimates import (
    FALLBACK_RIDE_SPEED_KMH,
    LatLon,
    Leg,
    PlanTerms,
    RideModel,
    TripEstimate,
    TripRanking,
    estimate_trip,
    rank_trip_estimates,
    ride_for_minutes,
)
from app.booking.offers import OfferExpired, OfferInvalid, _verify, issue_offer, verify_offer
from tests.conftest import make_settings

MODEL = RideModel(
    walking_speed_kmh=4.8,
    detour_factor=1.3,
    ride_speed_kmh={"scooter_standing": 15.0, "car": 30.0, "other": 12.0},
)
NOW = datetime(2025, 5, 1, 8, 30, tzinfo=UTC)
ORIGIN = LatLon(52.5200, 13.4050)
DESTINATION = LatLon(52.5350, 13.4300)


def walked(segments: list[PricingSegment], amount: float) -> int:
    """Reference charge: the rate at each of start, start + interval, ... the trip went past."""
    total = 0
    for s in segments:
        stop = amount if s.end is None else min(amount, s.end)
        point = float(s.start)
        while point < stop:
            total += s.rate_minor
            if s.interval == 0:
                break
            point += s.interval
    return total


PER_MIN = [
    PricingSegment(start=0, rate_minor=25, interval=1, end=20),
    PricingSegment(start=20, rate_minor=100, interval=5),
]
PER_KM = [PricingSegment(start=2, rate_minor=40, interval=1)]
PLAN = PlanTerms("op:plan", "EUR", 150, tuple(PER_MIN), tuple(PER_KM))


def test_estimate_follows_the_model_and_prices_whole_started_minutes_and_metres() -> None:
    vehicle = LatLon(52.5212, 13.4068)
    walk_m = geodesic(ORIGIN, vehicle).meters

    estimate = estimate_trip(
        MODEL,
        vehicle_id="op:s1",
        form_factor="scooter_standing",
        vehicle_at=vehicle,
        walk_meters=walk_m,
        destination=DESTINATION,
        plan=PLAN,
        now=NOW,
    )

    ride_m = geodesic(vehicle, DESTINATION).meters * 1.3
    ride_min = ride_m / 1000 / 15.0 * 60
    walk_min = walk_m / 1000 / 4.8 * 60
    assert estimate.walk.meters == pytest.approx(walk_m)
    assert estimate.walk.minutes == pytest.approx(walk_min)
    assert estimate.walk.whole_minutes == math.ceil(walk_min)
    assert estimate.ride.meters == pytest.approx(ride_m, abs=1e-6)
    assert estimate.ride.minutes == pytest.approx(ride_min)
    assert estimate.ride.whole_minutes == math.ceil(ride_min)
    assert estimate.ride.whole_meters == math.ceil(ride_m)
    assert estimate.arrival_time == NOW + timedelta(minutes=walk_min + ride_min)
    minutes, km = math.ceil(ride_min), math.ceil(ride_m) / 1000
    assert estimate.price == PriceBreakdown(
        "EUR",
        150,
        walked(PER_MIN, minutes),
        walked(PER_KM, km),
        150 + walked(PER_MIN, minutes) + walked(PER_KM, km),
    )
    assert estimate.price is not None and estimate.price.distance_minor > 0  # > 2 km: it counts


@pytest.mark.parametrize("minutes", [0.2, 1.0, 4.999, 5.0, 19.5, 20.0, 20.01, 24.9, 25.0, 31.7])
def test_rounding_up_to_whole_minutes_does_not_change_the_gbfs_price(minutes: float) -> None:
    # The reason the module may show whole minutes: with integer segment bounds, every started
    # minute is charged either way.
    whole = PLAN.price(Leg(meters=0.0, minutes=minutes))
    assert whole.time_minor == walked(PER_MIN, minutes)


def test_a_vehicle_without_a_pricing_plan_is_estimated_but_unpriced() -> None:
    estimate = estimate_trip(
        MODEL,
        vehicle_id="op:c1",
        form_factor="car",
        vehicle_at=ORIGIN,
        walk_meters=0.0,
        destination=DESTINATION,
        plan=None,
        now=NOW,
    )
    assert estimate.price is None
    expected = geodesic(ORIGIN, DESTINATION).meters * 1.3 / 1000 / 30.0 * 60
    assert estimate.ride.minutes == pytest.approx(expected)


def test_unknown_form_factors_ride_at_the_other_speed_and_then_at_the_fallback() -> None:
    assert MODEL.ride_speed("cargo_bicycle") == 12.0
    assert RideModel(4.8, 1.3, {"car": 30.0}).ride_speed("moped") == FALLBACK_RIDE_SPEED_KMH
    assert RideModel(4.8, 1.3, {"moped": 0.0, "other": 9.0}).ride_speed("moped") == 9.0


def test_a_quote_by_minutes_estimates_the_distance_from_the_ride_speed() -> None:
    ride = ride_for_minutes(MODEL, "car", 12)
    assert ride.minutes == 12 and ride.whole_minutes == 12
    assert ride.meters == pytest.approx(12 / 60 * 30.0 * 1000)  # 6 km at 30 km/h
    price = PLAN.price(ride)
    assert price.time_minor == walked(PER_MIN, 12)
    assert price.distance_minor == walked(PER_KM, 6.0)


def _estimate(
    vid: str, total: int | None, arrive_min: float, currency: str = "EUR"
) -> TripEstimate:
    price = None if total is None else PriceBreakdown(currency, total, 0, 0, total)
    leg = Leg(0.0, 0.0)
    return TripEstimate(vid, leg, leg, price, NOW + timedelta(minutes=arrive_min))


def test_ranking_by_price_puts_unpriced_last_and_breaks_ties_by_arrival() -> None:
    options = [
        _estimate("a", None, 1),
        _estimate("b", 300, 9),
        _estimate("c", 300, 4),
        _estimate("d", 120, 20),
        _estimate("e", None, 0.5),
    ]
    ranked = rank_trip_estimates(options, TripRanking.TOTAL_PRICE)
    assert [e.vehicle_id for e in ranked] == ["d", "c", "b", "e", "a"]


def test_ranking_by_arrival_breaks_ties_by_price_then_id() -> None:
    options = [
        _estimate("a", 500, 7),
        _estimate("b", None, 3),
        _estimate("c", 200, 7),
        _estimate("d", 200, 7),
        _estimate("e", 900, 2),
    ]
    ranked = rank_trip_estimates(options, TripRanking.ARRIVAL_TIME)
    assert [e.vehicle_id for e in ranked] == ["e", "b", "c", "d", "a"]


def test_prices_in_another_currency_rank_after_the_local_ones() -> None:
    # 100 öre is not cheaper than 250 cents: amounts of different currencies are not compared.
    options = [
        _estimate("eur-high", 250, 1),
        _estimate("sek", 100, 1, "SEK"),
        _estimate("eur-low", 200, 1),
        _estimate("none", None, 1),
    ]
    ranked = rank_trip_estimates(options, TripRanking.TOTAL_PRICE)
    assert [e.vehicle_id for e in ranked] == ["eur-low", "eur-high", "sek", "none"]


# --------------------------------------------------------------------------- offers

KEY = b"k" * 32
PRICE = PriceBreakdown("EUR", 100, 250, 40, 390)


def _offer(valid_until: datetime = NOW + timedelta(seconds=120)) -> str:
    return issue_offer(
        KEY,
        vehicle_id="op:s1",
        price=PRICE,
        ride=Leg(2345.2, 9.3),
        destination=DESTINATION,
        valid_until=valid_until,
    ).id


def test_an_offer_reads_back_what_was_quoted() -> None:
    token = _offer()
    offer = _verify(KEY, token, NOW)
    assert offer.id == token
    assert offer.vehicle_id == "op:s1"
    assert offer.price == PRICE
    assert (offer.price_minor, offer.currency) == (390, "EUR")
    assert offer.estimated_price == (390, "EUR")
    assert (offer.ride_minutes, offer.ride_meters) == (10, 2346)
    assert offer.destination == DESTINATION
    assert offer.valid_until == NOW + timedelta(seconds=120)
    # URL-safe: it can travel in a path or query string untouched.
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def test_an_unpriced_offer_by_minutes_reads_back() -> None:
    token = issue_offer(
        KEY,
        vehicle_id="op:c1",
        price=None,
        ride=Leg(5000.0, 10.0),
        destination=None,
        valid_until=NOW,
    ).id
    offer = _verify(KEY, token, NOW)
    assert offer.price is None and offer.estimated_price is None and offer.destination is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_tampered_offer_is_invalid() -> None:
    version, body, mac = _offer().split(".")
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["p"][-1] = 1  # a cheaper ride, with the original signature
    cheaper = f"{version}.{_b64(orjson.dumps(payload))}.{mac}"
    flipped = f"{version}.{body}.{mac[:-2]}{'A' if mac[-2] != 'A' else 'B'}{mac[-1]}"
    for token in (cheaper, flipped, f"o2.{body}.{mac}", f"{body}.{mac}", "", "garbage", "é.é.é"):
        with pytest.raises(OfferInvalid) as caught:
            _verify(KEY, token, NOW)
        assert caught.value.code == "OFFER_INVALID"


def test_an_offer_signed_with_another_key_is_invalid() -> None:
    with pytest.raises(OfferInvalid):
        _verify(b"x" * 32, _offer(), NOW)


def test_an_offer_is_valid_until_its_time_and_expired_after() -> None:
    until = NOW + timedelta(seconds=120)
    token = _offer(until)
    assert _verify(KEY, token, until).vehicle_id == "op:s1"
    with pytest.raises(OfferExpired) as caught:
        _verify(KEY, token, until + timedelta(seconds=1))
    assert caught.value.code == "OFFER_EXPIRED"


def test_a_tampered_expired_offer_is_reported_invalid_not_expired() -> None:
    version, body, mac = _offer(NOW).split(".")
    with pytest.raises(OfferInvalid):
        _verify(KEY, f"{version}.{body}x.{mac}", NOW + timedelta(days=1))


def test_processes_sharing_the_jwt_secret_verify_each_others_offers() -> None:
    from app.booking.offers import offer_signing_key

    one, other = make_settings(jwt_secret="s3cret"), make_settings(jwt_secret="s3cret")
    token = issue_offer(
        offer_signing_key(one),
        vehicle_id="op:s1",
        price=PRICE,
        ride=Leg(1.0, 1.0),
        destination=None,
        valid_until=NOW + timedelta(minutes=2),
    ).id
    assert verify_offer(other, token, NOW).price == PRICE
    with pytest.raises(OfferInvalid):
        verify_offer(make_settings(jwt_secret="another"), token, NOW)
    with pytest.raises(OfferInvalid):  # no secret: this process's random key
        verify_offer(make_settings(), token, NOW)
    # The offer key is derived from the secret, never the secret itself.
    assert offer_signing_key(one) != b"s3cret"
