"""Search over vehicles whose type the feed does not describe: found, but never as something
they may not be (a form factor filter only matches what the feed says)."""

from __future__ import annotations

from typing import Any

import httpx

from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.helpers import add_provider, scooter, serve_documents, synthetic_scooter_feeds

SEARCH = """
query($formFactors: [FormFactor!]) {
  vehicles(near: {lat: 52.52, lon: 13.40, radiusMeters: 500}, filter: {formFactors: $formFactors}) {
    id formFactor propulsionType vehicleType { id formFactor maxRangeMeters } pricingPlan { id }
  }
}"""


async def _ids(api: httpx.AsyncClient, form_factors: list[str] | None) -> dict[str, Any]:
    response = await api.post(
        "/graphql", json={"query": SEARCH, "variables": {"formFactors": form_factors}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return {v["id"]: v for v in body["data"]["vehicles"]}


async def test_a_vehicle_of_an_undescribed_type_is_found_as_other_and_only_as_other(
    runtime: Runtime, api: httpx.AsyncClient, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    documents = synthetic_scooter_feeds(
        [
            scooter("known", 52.5201, 13.4001),
            scooter("mystery", 52.5202, 13.4002, vehicle_type_id="unannounced-model"),
        ]
    )
    await add_provider(runtime, "syn", serve_documents(server, base_url, "syn", documents))
    report = await runtime.sync.sync("syn")
    assert report.ok, report.error

    everything = await _ids(api, None)
    assert set(everything) == {"syn:known", "syn:mystery"}
    assert everything["syn:mystery"] == {
        "id": "syn:mystery",
        "formFactor": "OTHER",
        "propulsionType": "HUMAN",
        "vehicleType": {
            "id": "syn:unannounced-model",
            "formFactor": "OTHER",
            "maxRangeMeters": None,
        },
        # No plan of its own and no type default: priced by nobody rather than by a guess.
        "pricingPlan": None,
    }
    assert set(await _ids(api, ["OTHER"])) == {"syn:mystery"}
    assert set(await _ids(api, ["SCOOTER_STANDING"])) == {"syn:known"}
    assert set(await _ids(api, ["BICYCLE"])) == set()
