// The reference web app (/app/) in a real browser (Debian's Chromium, driven by Playwright)
// against a live `mobility serve`: the map draws the operators' vehicles from the vector tiles
// and the live subscription, a rider signs up and books, rides and ends a trip with the UI's
// buttons, the API agrees with what the page showed, and staff read the operator status page.
// What the map must draw is computed from the positions the operators published (the control
// endpoint's /info), not from the API.
import assert from "node:assert/strict";
import { test } from "node:test";

import { eventually, gql, liveBrowser, metres } from "./support.mjs";

let live;
let browser;
liveBrowser((l, b) => {
  live = l;
  browser = b;
});

/** The app in a fresh browser context, with every request and failure recorded. */
async function openApp() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const requests = [];
  const failures = [];
  page.on("request", (request) => requests.push(request.url()));
  page.on("pageerror", (error) => failures.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") failures.push(`console: ${message.text()}`);
  });
  const response = await page.goto(`${live.apiUrl}/app/`);
  assert.equal(response.status(), 200);
  const csp = response.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self';/);
  await page.waitForFunction(() => window.mobility?.map?.loaded(), null, { timeout: 30_000 });
  return { context, page, requests, failures };
}

function offOrigin(requests) {
  return requests.filter((url) => !url.startsWith(live.apiUrl) && !url.startsWith("data:"));
}

/** The vehicle ids the map draws now (tile points and live points), each as often as drawn. */
async function drawnVehicles(page) {
  return page.evaluate(() => {
    const map = window.mobility.map;
    return map.queryRenderedFeatures({ layers: ["vehicles", "live"] }).map((f) => f.properties.id);
  });
}

async function viewBounds(page) {
  return page.evaluate(() => {
    const b = window.mobility.map.getBounds();
    return { west: b.getWest(), south: b.getSouth(), east: b.getEast(), north: b.getNorth() };
  });
}

async function goTo(page, { lat, lon }, zoom) {
  await page.evaluate(
    ({ lat, lon, zoom }) => window.mobility.map.jumpTo({ center: [lon, lat], zoom }),
    { lat, lon, zoom },
  );
}

test("the map draws every vehicle of the view, once, from the tiles and the live updates", async () => {
  const { context, page, requests, failures } = await openApp();
  await goTo(page, live.centre, 16);
  const published = { ...live.livePositions, ...live.bookablePositions };
  let expected;
  await eventually(20_000, "the vehicles of the view to be drawn", async () => {
    const bounds = await viewBounds(page);
    expected = Object.entries(published)
      .filter(([, p]) => p.lon >= bounds.west && p.lon <= bounds.east && p.lat >= bounds.south && p.lat <= bounds.north)
      .map(([id]) => id)
      .sort();
    const drawn = (await drawnVehicles(page)).sort();
    // The tiles alone can draw the whole view before the subscription's snapshot arrives, so
    // the live layer is waited for too: once it has drawn, each vehicle must still be drawn
    // once (the live layer's, not the tiles' too).
    const fromLive = await page.evaluate(
      () => window.mobility.map.queryRenderedFeatures({ layers: ["live"] }).length,
    );
    return fromLive > 0 && JSON.stringify(drawn) === JSON.stringify(expected);
  });
  assert.ok(expected.length >= 10, `only ${expected.length} vehicles in view`);
  // City zoom: clusters whose counts add up to what the tiles hold.
  await goTo(page, live.centre, 12);
  await eventually(20_000, "clusters to be drawn", async () => {
    const counts = await page.evaluate(() =>
      window.mobility.map.queryRenderedFeatures({ layers: ["vehicle-clusters"] }).map((f) => f.properties.count),
    );
    return counts.length > 0 && counts.reduce((a, b) => a + b, 0) === Object.keys(published).length;
  });
  assert.deepEqual(offOrigin(requests), [], "the page loaded something from another host");
  assert.deepEqual(failures, []);
  await context.close();
});

test("a rider books, rides and ends a trip with the app's buttons, and the API agrees", async () => {
  const { context, page, requests, failures } = await openApp();
  const email = `app-${Date.now()}@example.org`;
  await page.fill("#account input[name=email]", email);
  await page.fill("#account input[name=password]", "correct horse battery");
  await page.click("#account button:text('Sign up')");
  await page.locator("#signed-in").waitFor();

  // Click a bookable vehicle where the map draws it: the one farthest from the middle, where
  // the map opens and puts the "you" marker (which would take the click).
  const [vehicleId, at] = Object.entries(live.bookablePositions)
    .map(([id, p]) => [id, p, metres(p, live.centre)])
    .sort((a, b) => b[2] - a[2])[0];
  await goTo(page, at, 17);
  await eventually(20_000, "the vehicle to be drawn", async () => (await drawnVehicles(page)).includes(vehicleId));
  const point = await page.evaluate(({ lat, lon }) => {
    const p = window.mobility.map.project([lon, lat]);
    const box = window.mobility.map.getCanvas().getBoundingClientRect();
    return { x: box.left + p.x, y: box.top + p.y };
  }, at);
  await page.mouse.click(point.x, point.y);
  await page.locator("#vehicle-id", { hasText: vehicleId }).waitFor();
  const quote = await page.locator("#quote").textContent();
  assert.match(quote, /^\d+\.\d{2} [A-Z]{3}$/, `quote: ${quote}`);

  const state = page.locator("#booking-state");
  await page.click("#reserve");
  await state.filter({ hasText: "CONFIRMED" }).waitFor();
  for (const [action, after] of [["START", "STARTED"], ["PAUSE", "PAUSED"], ["RESUME", "STARTED"]]) {
    await page.click(`#booking-actions [data-action=${action}]`);
    await state.filter({ hasText: after }).waitFor();
  }
  // May I park here? The answer comes with the zone that decides it, drawn on the map.
  await page.click("#park-check");
  await page.locator("#park-answer").filter({ hasText: /^(Yes|No): / }).waitFor();

  // Drag "you" 150 m east, then end the ride there.
  const marker = await page.locator(".maplibregl-marker").boundingBox();
  const metresPerPixel = await page.evaluate(() => {
    const map = window.mobility.map;
    const a = map.unproject([0, 0]);
    const b = map.unproject([100, 0]);
    return a.distanceTo(b) / 100;
  });
  const from = { x: marker.x + marker.width / 2, y: marker.y + marker.height - 2 };
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(from.x + 150 / metresPerPixel, from.y, { steps: 10 });
  await page.mouse.up();
  const endedAt = await page.evaluate(() => window.mobility.you.getLngLat());
  assert.ok(endedAt.lng > at.lon, "the marker did not move");
  await page.click("#booking-actions [data-action=FINISH]");
  await state.filter({ hasText: "FINISHED" }).waitFor();
  const total = await page.locator("#receipt-total").textContent();

  // The API, asked with the rider's own token, holds what the page showed.
  const { bookingId, token } = await page.evaluate(() => ({
    bookingId: window.mobility.state.booking.id,
    token: JSON.parse(sessionStorage.getItem("mobility.session")).accessToken,
  }));
  const { booking } = await gql(
    live.apiUrl,
    `query B($id: ID!) { booking(id: $id) { state vehicleId finalPrice { amount currency }
       receipt { total { amount currency } } events { event } } }`,
    { id: bookingId },
    token,
  );
  assert.equal(booking.state, "FINISHED");
  assert.equal(booking.vehicleId, vehicleId);
  assert.equal(total, `${booking.receipt.total.amount} ${booking.receipt.total.currency}`);
  const events = booking.events.map((e) => e.event);
  for (const event of ["START", "PAUSE", "RESUME", "FINISH"]) assert.ok(events.includes(event), `${event} in ${events}`);
  assert.deepEqual(offOrigin(requests), []);
  assert.deepEqual(failures, []);
  await context.close();
});

test("the status page shows every operator's health", async () => {
  const { context, page, failures } = await openApp();
  await page.click("#nav-status");
  const table = page.locator("#status-table");
  await table.waitFor();
  for (const provider of [live.liveProvider, live.bookableProvider]) {
    const row = table.locator(`tr[data-provider="${provider}"]`);
    await row.waitFor();
    assert.equal(await row.getAttribute("data-status"), "OK", provider);
  }
  // Back to the map: its panels return.
  await page.click("#nav-map");
  await page.locator("#filters").waitFor();
  assert.deepEqual(failures, []);
  await context.close();
});
