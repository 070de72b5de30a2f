// Shared by the client tests: the live API's control endpoint (tests/clients/live_api.py starts
// the API and sets MOBILITY_CONTROL_URL), GraphQL over plain fetch for set-up steps, and small
// waiting helpers. Nothing here talks the GraphQL protocols for the clients under test.
import { randomUUID } from "node:crypto";
import { after, before } from "node:test";

import { launchChromium } from "./chromium.mjs";

export const CONTROL_URL = process.env.MOBILITY_CONTROL_URL;
if (!CONTROL_URL) {
  throw new Error(
    "MOBILITY_CONTROL_URL is not set: these tests run under pytest (tests/clients/), " +
      "which starts the API they talk to",
  );
}

export async function info() {
  const response = await fetch(`${CONTROL_URL}/info`);
  if (!response.ok) throw new Error(`control /info: HTTP ${response.status}`);
  return response.json();
}

export async function control(action) {
  const response = await fetch(`${CONTROL_URL}/${action}`, { method: "POST" });
  if (!response.ok) throw new Error(`control /${action}: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

/** One GraphQL request over plain fetch (set-up only: the clients under test do the rest). */
export async function gql(apiUrl, query, variables = {}, token = undefined) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${apiUrl}/graphql`, {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

export async function signUp(apiUrl) {
  const data = await gql(
    apiUrl,
    `mutation S($input: SignUpInput!) { signUp(input: $input) { accessToken } }`,
    {
      input: {
        email: `js-${randomUUID().slice(0, 12)}@example.org`,
        password: "correct horse battery",
        birthDate: "1990-05-17",
      },
    },
  );
  return data.signUp.accessToken;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the promise's value, or rejects after ms with a message saying what hung. */
export async function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls until check() returns a truthy value, which it returns. */
export async function eventually(ms, what, check) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Metres between two points (haversine: plenty for the few hundred metres compared here). */
export function metres(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h =
    Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6_371_008.8 * Math.asin(Math.sqrt(h));
}

export const VEHICLE_UPDATES = `
subscription Live($lat: Float!, $lon: Float!) {
  vehicleUpdates(near: {lat: $lat, lon: $lon, radiusMeters: 1500}, first: 100) {
    kind
    created { id lat lon }
    updated { id lat lon }
    removed
  }
}`;

/**
 * Follows vehicleUpdates messages into a map id -> {lat, lon}, as a map client keeps its
 * markers: a SNAPSHOT replaces the set, a DELTA applies to it. Also records every message.
 */
export class VehicleSet {
  constructor() {
    this.vehicles = new Map();
    this.messages = [];
    this.snapshots = 0;
  }

  apply(update) {
    this.messages.push(update);
    if (update.kind === "SNAPSHOT") {
      this.snapshots += 1;
      this.vehicles = new Map();
    }
    for (const v of [...update.created, ...update.updated]) {
      this.vehicles.set(v.id, { lat: v.lat, lon: v.lon });
    }
    for (const id of update.removed) this.vehicles.delete(id);
  }

  /** The ids whose position in this set differs from `positions` (id -> [lat, lon]). */
  differences(positions) {
    const wrong = [];
    for (const [id, [lat, lon]] of Object.entries(positions)) {
      const seen = this.vehicles.get(id);
      if (!seen || Math.abs(seen.lat - lat) > 1e-6 || Math.abs(seen.lon - lon) > 1e-6) wrong.push(id);
    }
    return wrong;
  }

  /** Ids that a DELTA since message index `from` named as created or updated. */
  changedSince(from) {
    const ids = new Set();
    for (const m of this.messages.slice(from)) {
      if (m.kind !== "DELTA") continue;
      for (const v of [...m.created, ...m.updated]) ids.add(v.id);
      for (const id of m.removed) ids.add(id);
    }
    return ids;
  }
}

/** For a browser test file: before its tests, the live API's /info and a Chromium, handed to
 * ``ready(live, browser)``; after them, the browser closed. */
export function liveBrowser(ready) {
  let browser;
  before(async () => {
    const live = await info();
    browser = await launchChromium();
    ready(live, browser);
  });
  after(async () => {
    await browser?.close();
  });
}
