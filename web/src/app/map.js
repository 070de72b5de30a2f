// The map: the API's vector tiles (vehicles, stations, zones) in MapLibre, and at street zooms
// the vehicles of the view live from the `vehicleUpdates` subscription, drawn over the tiles
// (a vehicle the subscription tracks is hidden from the tile layer, so it is drawn once).
import maplibregl from "maplibre-gl/dist/maplibre-gl-csp.js";
import workerUrl from "maplibre-gl/dist/maplibre-gl-csp-worker.js?url";
import "maplibre-gl/dist/maplibre-gl.css";

import { session, subscribe } from "./api.js";

// The CSP build: the worker is a file of this server, not a blob: URL the page's
// Content-Security-Policy would refuse.
maplibregl.setWorkerUrl(workerUrl);

export const FORM_FACTOR_COLOURS = {
  bicycle: "#2a9d8f",
  cargo_bicycle: "#1d6f65",
  car: "#264653",
  moped: "#9b5de5",
  scooter_standing: "#e76f51",
  scooter_seated: "#f4a261",
  other: "#8d99ae",
};
const LIVE_FROM_ZOOM = 14;
const TILE_REFRESH_MS = 20_000;

const LIVE_QUERY = `
subscription Live($within: WithinInput, $filter: VehicleFilterInput) {
  vehicleUpdates(within: $within, filter: $filter, first: 200) {
    kind
    created { id providerId formFactor propulsionType lat lon currentRangeMeters }
    updated { id providerId formFactor propulsionType lat lon currentRangeMeters }
    removed
  }
}`;

function colourBy(attribute) {
  const match = ["match", ["get", attribute]];
  for (const [value, colour] of Object.entries(FORM_FACTOR_COLOURS)) match.push(value, colour);
  match.push("#8d99ae");
  return match;
}

function emptyCollection() {
  return { type: "FeatureCollection", features: [] };
}

export class MobilityMap {
  constructor(container, config, { onVehicle, onPoint }) {
    this.config = config;
    this.filters = { formFactors: null, providers: null };
    this.live = new Map();
    this.unsubscribe = null;
    this.onVehicle = onVehicle;
    this.onPoint = onPoint;
    this.map = new maplibregl.Map({
      container,
      style: config.basemapStyleUrl ?? {
        version: 8,
        sources: {},
        layers: [{ id: "background", type: "background", paint: { "background-color": "#f2efe9" } }],
      },
      center: config.center,
      zoom: config.zoom,
      maxZoom: config.maxZoom,
      attributionControl: false,
      // Tiles carry the rider's token, so that private fleets of their organisation show.
      transformRequest: (url) => {
        const token = session.token();
        if (token && url.startsWith(`${location.origin}/tiles/`)) {
          return { url, headers: { Authorization: `Bearer ${token}` } };
        }
        return { url };
      },
    });
    this.map.addControl(new maplibregl.NavigationControl({ showCompass: false }));
    this.you = new maplibregl.Marker({ color: "#1d3557", draggable: true })
      .setLngLat(config.center)
      .addTo(this.map);
    this.loaded = new Promise((resolve) => this.map.on("load", resolve));
    this.map.on("load", () => this.addLayers());
  }

  /** The tiles' URL with the filters of the panel, as docs/tiles.md describes them. */
  tileUrl(layer) {
    const params = new URLSearchParams();
    if (layer === "vehicles" && this.filters.formFactors) {
      params.set("form_factors", this.filters.formFactors.join(","));
    }
    if (this.filters.providers) params.set("providers", this.filters.providers.join(","));
    const query = params.toString();
    return `${location.origin}/tiles/${layer}/{z}/{x}/{y}.mvt${query ? `?${query}` : ""}`;
  }

  addLayers() {
    const map = this.map;
    const maxzoom = this.config.maxZoom;
    for (const layer of ["zones", "stations", "vehicles"]) {
      map.addSource(layer, { type: "vector", tiles: [this.tileUrl(layer)], maxzoom });
    }
    map.addLayer({
      id: "zones-fill",
      type: "fill",
      source: "zones",
      "source-layer": "zones",
      filter: this.zonesInForce(),
      paint: {
        // Red where rides may not end, blue where they may, grey where the zone's general rule
        // does not say (its rules name vehicle types: ask "May I park here?" with the vehicle).
        "fill-color": [
          "case",
          ["==", ["get", "ride_end_allowed"], false],
          "#e63946",
          ["==", ["get", "ride_end_allowed"], true],
          "#457b9d",
          "#8d99ae",
        ],
        "fill-opacity": 0.12,
      },
    });
    map.addLayer({
      id: "zones-line",
      type: "line",
      source: "zones",
      "source-layer": "zones",
      filter: this.zonesInForce(),
      paint: { "line-color": "#e63946", "line-width": 1, "line-opacity": 0.6 },
    });
    map.addLayer({
      id: "station-clusters",
      type: "circle",
      source: "stations",
      "source-layer": "station_clusters",
      paint: {
        "circle-color": "#ffffff",
        "circle-stroke-color": "#1d3557",
        "circle-stroke-width": 2,
        "circle-radius": ["interpolate", ["linear"], ["get", "count"], 1, 6, 50, 16],
      },
    });
    map.addLayer({
      id: "stations",
      type: "circle",
      source: "stations",
      "source-layer": "stations",
      paint: {
        "circle-color": "#ffffff",
        "circle-stroke-color": "#1d3557",
        "circle-stroke-width": 3,
        "circle-radius": 7,
      },
    });
    map.addLayer({
      id: "vehicle-clusters",
      type: "circle",
      source: "vehicles",
      "source-layer": "vehicle_clusters",
      paint: {
        "circle-color": "#e76f51",
        "circle-opacity": 0.75,
        "circle-stroke-color": "#ffffff",
        "circle-stroke-width": 1,
        "circle-radius": ["interpolate", ["linear"], ["get", "count"], 1, 5, 100, 14, 2000, 30],
      },
    });
    map.addLayer({
      id: "vehicles",
      type: "circle",
      source: "vehicles",
      "source-layer": "vehicles",
      paint: {
        "circle-color": colourBy("form_factor"),
        "circle-radius": 6,
        "circle-stroke-color": "#ffffff",
        "circle-stroke-width": 1.5,
      },
    });
    map.addSource("live", { type: "geojson", data: emptyCollection() });
    map.addLayer({
      id: "live",
      type: "circle",
      source: "live",
      paint: {
        "circle-color": colourBy("form_factor"),
        "circle-radius": 6,
        "circle-stroke-color": "#1d3557",
        "circle-stroke-width": 1.5,
      },
    });
    map.addSource("highlight", { type: "geojson", data: emptyCollection() });
    map.addLayer({
      id: "highlight-fill",
      type: "fill",
      source: "highlight",
      paint: { "fill-color": "#e63946", "fill-opacity": 0.3 },
    });
    map.addLayer({
      id: "highlight-line",
      type: "line",
      source: "highlight",
      paint: { "line-color": "#e63946", "line-width": 3 },
    });

    for (const layer of ["vehicles", "live"]) {
      map.on("click", layer, (event) => {
        const feature = event.features?.[0];
        if (feature) this.onVehicle(feature.properties.id);
      });
      map.on("mouseenter", layer, () => (map.getCanvas().style.cursor = "pointer"));
      map.on("mouseleave", layer, () => (map.getCanvas().style.cursor = ""));
    }
    map.on("click", "vehicle-clusters", (event) => {
      map.easeTo({ center: event.lngLat, zoom: Math.min(map.getZoom() + 2, this.config.maxZoom) });
    });
    map.on("click", (event) => {
      const hits = map.queryRenderedFeatures(event.point, { layers: ["vehicles", "live", "vehicle-clusters"] });
      if (!hits.length) this.onPoint(event.lngLat);
    });
    map.on("moveend", () => this.followView());
    this.followView();
    // Vehicles that enter the view untracked (and clusters) come with the tiles: re-read them
    // now and then; unchanged tiles are answered 304 (their ETag).
    setInterval(() => this.refreshTiles(), TILE_REFRESH_MS);
  }

  /** Temporary zones only while in force (their times are ISO 8601 in UTC: they compare as text). */
  zonesInForce() {
    const now = new Date().toISOString().slice(0, 19) + "Z";
    return [
      "all",
      ["any", ["!", ["has", "starts_at"]], ["<=", ["get", "starts_at"], now]],
      ["any", ["!", ["has", "ends_at"]], [">", ["get", "ends_at"], now]],
    ];
  }

  setFilters(filters) {
    this.filters = filters;
    this.refreshTiles();
    this.followView(true);
  }

  refreshTiles() {
    for (const layer of ["zones", "stations", "vehicles"]) {
      this.map.getSource(layer)?.setTiles([this.tileUrl(layer)]);
    }
    for (const layer of ["zones-fill", "zones-line"]) {
      if (this.map.getLayer(layer)) this.map.setFilter(layer, this.zonesInForce());
    }
  }

  /** At street zooms, the vehicles of the view come live from the subscription. */
  followView(force = false) {
    const zoom = this.map.getZoom();
    if (zoom < LIVE_FROM_ZOOM) {
      this.stopLive();
      return;
    }
    const bounds = this.map.getBounds();
    const within = {
      minLat: bounds.getSouth(),
      minLon: bounds.getWest(),
      maxLat: bounds.getNorth(),
      maxLon: bounds.getEast(),
    };
    const key = JSON.stringify([within, this.filters]);
    if (!force && key === this.liveKey) return;
    this.stopLive();
    this.liveKey = key;
    const filter = {};
    if (this.filters.formFactors) filter.formFactors = this.filters.formFactors.map((f) => f.toUpperCase());
    if (this.filters.providers) filter.providers = this.filters.providers;
    this.unsubscribe = subscribe(LIVE_QUERY, { within, filter }, {
      next: (data) => this.applyUpdate(data.vehicleUpdates),
      error: (error) => console.warn("live updates:", error.message),
    });
  }

  stopLive() {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.liveKey = null;
    this.live.clear();
    this.drawLive();
  }

  applyUpdate(update) {
    if (update.kind === "SNAPSHOT") this.live.clear();
    for (const vehicle of [...update.created, ...update.updated]) this.live.set(vehicle.id, vehicle);
    for (const id of update.removed) this.live.delete(id);
    this.drawLive();
  }

  drawLive() {
    const source = this.map.getSource("live");
    if (!source) return;
    const features = [...this.live.values()].map((v) => ({
      type: "Feature",
      geometry: { type: "Point", coordinates: [v.lon, v.lat] },
      properties: {
        id: v.id,
        provider_id: v.providerId,
        form_factor: v.formFactor.toLowerCase(),
        propulsion_type: v.propulsionType.toLowerCase(),
      },
    }));
    source.setData({ type: "FeatureCollection", features });
    const ids = [...this.live.keys()];
    this.map.setFilter("vehicles", ids.length ? ["!", ["in", ["get", "id"], ["literal", ids]]] : null);
  }

  /** Draw a zone (GeoJSON geometry) over the map, or clear it. */
  highlight(geometry) {
    const data = geometry
      ? { type: "FeatureCollection", features: [{ type: "Feature", geometry, properties: {} }] }
      : emptyCollection();
    this.map.getSource("highlight")?.setData(data);
  }

  youAreHere() {
    const { lat, lng } = this.you.getLngLat();
    return { lat, lon: lng };
  }
}
