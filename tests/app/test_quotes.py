"""Trip estimates, the choice and ranking of options, and offer tokens, without a database.
Expected figures are worked out here from the inputs (geopy for distances, a segment walker for
prices, a comparison of every pair for the options kept), never by the code under test."""

from __future__ import annotations

import base64
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Literal

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
    choose_trip_estimates,
    dominates,
    estimate_trip,
    estimate_walk,
    non_dominated,
    rank_trip_estimates,
    ride_for_minutes,
)
from app.booking.offers import OfferExpired, OfferInvalid, _verify, issue_offer, verify_offer
from tests.conftest import make_settings
from tests.trip_support import FREE, Candidate, pareto_front

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


# --------------------------------------------------------------------------- the choice


def test_walking_the_whole_way_follows_the_walking_model() -> None:
    walk = estimate_walk(MODEL, ORIGIN, DESTINATION, NOW)

    meters = geodesic(ORIGIN, DESTINATION).meters
    minutes = meters / 1000 / 4.8 * 60
    assert walk.is_walk and walk.vehicle_id is None and walk.transfers == 0
    assert walk.walk.meters == pytest.approx(meters, abs=1e-6)
    assert walk.walk.minutes == pytest.approx(minutes)
    assert (walk.ride.meters, walk.ride.minutes) == (0.0, 0.0)
    assert walk.price is None  # free: no pricing plan applies
    assert walk.arrival_time - (NOW + timedelta(minutes=minutes)) < timedelta(microseconds=2)


def _vehicle(
    vid: str,
    arrive_min: float,
    price: tuple[str, int] | None,
    provider: str = "op",
    form_factor: str = "bicycle",
) -> TripEstimate:
    breakdown = None if price is None else PriceBreakdown(price[0], price[1], 0, 0, price[1])
    leg = Leg(0.0, 0.0)
    at = NOW + timedelta(minutes=arrive_min)
    return TripEstimate(vid, leg, leg, breakdown, at, provider, form_factor)


def _walk(arrive_min: float) -> TripEstimate:
    leg = Leg(0.0, 0.0)
    return TripEstimate(None, leg, leg, None, NOW + timedelta(minutes=arrive_min))


def _candidate(e: TripEstimate) -> Candidate:
    """The estimate as the reference in tests/trip_support.py sees it."""
    price: tuple[str, int] | Literal["free"] | None
    if e.vehicle_id is None:
        price = FREE
    else:
        price = None if e.price is None else (e.price.currency, e.price.total_minor)
    return Candidate(
        key=e.vehicle_id or "walk",
        arrival=(e.arrival_time - NOW).total_seconds(),
        transfers=0 if e.vehicle_id is None else 1,
        price=price,
    )


def _keys(estimates: list[TripEstimate]) -> list[str]:
    return [e.vehicle_id or "walk" for e in estimates]


def test_walking_drops_every_option_arriving_no_earlier_priced_or_not() -> None:
    options = [
        _walk(18),
        _vehicle("faster", 16, ("EUR", 145)),
        _vehicle("free-same-time", 18, ("EUR", 0)),  # as fast and as free, one more leg
        _vehicle("unpriced-slower", 19, None),  # its price is unknown, but never below zero
        _vehicle("unpriced-faster", 17, None),
        _vehicle("sek-slower", 20, ("SEK", 100)),
    ]
    assert _keys(non_dominated(options)) == ["walk", "faster", "unpriced-faster"]
    assert dominates(options[0], options[2]) and not dominates(options[2], options[0])


def test_prices_in_different_currencies_or_unknown_do_not_dominate_each_other() -> None:
    options = [
        _vehicle("eur", 5, ("EUR", 100)),
        _vehicle("sek", 6, ("SEK", 500)),  # later and a bigger number, but in kronor: kept
        _vehicle("eur-later-dearer", 6, ("EUR", 200)),  # beaten by "eur"
        _vehicle("eur-same-dearer", 5, ("EUR", 150)),  # same time, dearer: beaten
        _vehicle("eur-twin", 5, ("EUR", 100)),  # equal to "eur": neither beats the other
        _vehicle("unpriced", 9, None),
    ]
    assert _keys(non_dominated(options)) == ["eur", "sek", "eur-twin", "unpriced"]


def _random_options(seed: int) -> list[TripEstimate]:
    """Up to 60 vehicles in euros, kronor or unpriced, and (in 3 sets of 4) walking; few
    distinct arrivals and prices, so they tie often."""
    rng = random.Random(seed)
    options = [_walk(rng.randint(5, 30))] if seed % 4 else []
    for i in range(rng.randint(1, 60)):
        kind = rng.random()
        if kind < 0.7:
            price: tuple[str, int] | None = ("EUR", rng.choice([0, 100, 150, 200, 250, 300]))
        elif kind < 0.85:
            price = ("SEK", rng.choice([500, 1000, 1500]))
        else:
            price = None
        options.append(_vehicle(f"v{i}", rng.randint(1, 25) + rng.choice([0, 0.5]), price))
    rng.shuffle(options)
    return options


@pytest.mark.parametrize("seed", range(40))
def test_the_front_is_what_a_comparison_of_every_pair_keeps(seed: int) -> None:
    options = _random_options(seed)

    front = non_dominated(options)

    assert {e.vehicle_id or "walk" for e in front} == pareto_front([_candidate(e) for e in options])
    assert [e for e in options if e in front] == front  # in the given order


def test_the_reference_front_is_exercised_by_the_random_sets() -> None:
    # Over the seeds above: options beaten by walking, by a vehicle, and kept in each currency.
    beaten_by_walk = beaten_by_vehicle = 0
    kept_currencies: Counter[str] = Counter()
    for seed in range(40):
        options = _random_options(seed)
        walk = next((e for e in options if e.vehicle_id is None), None)
        front = pareto_front([_candidate(e) for e in options])
        for e in options:
            if (e.vehicle_id or "walk") in front:
                kept_currencies[e.price.currency if e.price else "none"] += 1
            elif walk is not None and e.arrival_time >= walk.arrival_time:
                beaten_by_walk += 1
            else:
                beaten_by_vehicle += 1
    assert beaten_by_walk > 50 and beaten_by_vehicle > 50
    assert {"EUR", "SEK", "none"} <= set(kept_currencies)


def _diverse_city() -> list[TripEstimate]:
    """Walking; one operator's docked bikes, six at one station (tied), one elsewhere, and a
    scooter; another operator's scooters; a third's car. None beats another."""
    return [
        _walk(20),
        *(_vehicle(f"a{i}", 15, ("EUR", 100), "a", "bicycle") for i in range(1, 7)),
        _vehicle("a7", 13, ("EUR", 150), "a", "bicycle"),
        _vehicle("as", 11, ("EUR", 200), "a", "scooter_standing"),
        _vehicle("b1", 10, ("EUR", 250), "b", "scooter_standing"),
        _vehicle("b2", 9, ("EUR", 275), "b", "scooter_standing"),
        _vehicle("c1", 8, ("EUR", 400), "c", "car"),
    ]


def test_every_mode_and_operator_comes_before_a_second_of_one_operators_form_factor() -> None:
    city = _diverse_city()
    assert pareto_front([_candidate(e) for e in city]) == {e.vehicle_id or "walk" for e in city}
    # Cheapest first: walking, a1 (a's bikes), a2-a7 skipped (a and bicycles are in), "as"
    # (the first scooter), b1 (operator b), then c1 (car, operator c) when there is a place.
    assert _keys(choose_trip_estimates(city, TripRanking.TOTAL_PRICE, 4)) == [
        "walk",
        "a1",
        "as",
        "b1",
    ]
    assert _keys(choose_trip_estimates(city, TripRanking.TOTAL_PRICE, 5)) == [
        "walk",
        "a1",
        "as",
        "b1",
        "c1",
    ]
    # Three more places, in rounds: the second of (a, bicycle) and of (b, scooter), then the
    # third of (a, bicycle); listed in price order.
    assert _keys(choose_trip_estimates(city, TripRanking.TOTAL_PRICE, 8)) == [
        "walk",
        "a1",
        "a2",
        "a3",
        "as",
        "b1",
        "b2",
        "c1",
    ]
    # Fastest first: c1 (car, c), b2 (scooter, b), b1 skipped, "as" (operator a).
    assert _keys(choose_trip_estimates(city, TripRanking.ARRIVAL_TIME, 3)) == ["c1", "b2", "as"]
    # Room for everything: the whole front, ranked.
    assert _keys(choose_trip_estimates(city, TripRanking.ARRIVAL_TIME, 50)) == [
        "c1",
        "b2",
        "b1",
        "as",
        "a7",
        "a1",
        "a2",
        "a3",
        "a4",
        "a5",
        "a6",
        "walk",
    ]


@pytest.mark.parametrize("seed", range(30))
def test_a_diverse_choice_keeps_the_rules_on_random_cities(seed: int) -> None:
    rng = random.Random(1000 + seed)
    providers = ["p", "q", "r"]
    form_factors = ["bicycle", "scooter_standing", "car"]
    options = [_walk(rng.randint(10, 30))]
    for i in range(rng.randint(5, 80)):
        price = None if rng.random() < 0.1 else ("EUR", rng.choice(range(0, 600, 25)))
        options.append(
            _vehicle(
                f"v{i:02}",
                rng.randint(1, 30),
                price,
                rng.choice(providers[: rng.randint(1, 3)]),
                rng.choice(form_factors),
            )
        )
    limit = rng.randint(1, 12)
    front = [
        e
        for e in options
        if (e.vehicle_id or "walk") in pareto_front([_candidate(c) for c in options])
    ]

    chosen = choose_trip_estimates(options, TripRanking.TOTAL_PRICE, limit)

    assert len(chosen) == min(limit, len(front))
    assert {id(e) for e in chosen} <= {id(e) for e in front}

    def by_price(e: TripEstimate) -> tuple[int, int, datetime, str]:
        if e.vehicle_id is None:
            return (0, 0, e.arrival_time, "")
        if e.price is None:
            return (1, 0, e.arrival_time, e.vehicle_id)
        return (0, e.price.total_minor, e.arrival_time, e.vehicle_id)

    assert chosen == sorted(chosen, key=by_price)
    groups = Counter((e.provider_id, e.form_factor) for e in chosen)
    if any(n > 1 for n in groups.values()):
        # A second of one (provider, form factor) only once every mode and operator is in.
        assert {e.form_factor for e in chosen} == {e.form_factor for e in front}
        assert {e.provider_id for e in chosen} == {e.provider_id for e in front}
    if len(chosen) < len(front):
        # The cheapest option always makes it (it brings its mode or its operator first).
        assert chosen[0] == min(front, key=by_price)


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
