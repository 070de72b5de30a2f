// The web app's main screens, taken from a running demo (`make run` in another terminal) into
// docs/images/ for the README and docs/web-app.md. `make screenshots` runs it.
//
//   node scripts/screenshots.mjs [API URL, default http://127.0.0.1:8000]
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { launchChromium } from "../test/chromium.mjs";

const api = process.argv[2] ?? "http://127.0.0.1:8000";
const out = join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), "docs", "images");
mkdirSync(out, { recursive: true });

async function gql(query) {
  const response = await fetch(`${api}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query }),
  });
  return (await response.json()).data;
}

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${api}/app/`);
  await page.waitForFunction(() => window.mobility?.map?.loaded(), null, { timeout: 30_000 });
  const idle = () => page.evaluate(() => new Promise((resolve) => window.mobility.map.once("idle", resolve)));
  const shoot = async (name) => {
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(out, `${name}.png`) });
    console.log(`docs/images/${name}.png`);
  };
  await page.evaluate(() => window.mobility.map.jumpTo({ zoom: 13 }));
  await idle();
  await shoot("map-city");

  // A bookable scooter of the demo, its details, and a whole ride.
  const { vehicles } = await gql(`{ vehicles(near: {lat: 52.5219, lon: 13.4132, radiusMeters: 3000},
    filter: {providers: ["demo-tomp-scooters"]}, first: 1) { id lat lon } }`);
  const [vehicle] = vehicles;
  await page.evaluate(({ lat, lon }) => window.mobility.map.jumpTo({ center: [lon, lat], zoom: 16 }), vehicle);
  await idle();
  await page.fill("#account input[name=email]", `screens-${Date.now()}@example.org`);
  await page.fill("#account input[name=password]", "correct horse battery");
  await page.click("#account button:text('Sign up')");
  await page.locator("#signed-in").waitFor();
  const point = await page.evaluate(({ lat, lon }) => {
    const p = window.mobility.map.project([lon, lat]);
    const box = window.mobility.map.getCanvas().getBoundingClientRect();
    return { x: box.left + p.x, y: box.top + p.y };
  }, vehicle);
  await page.mouse.click(point.x, point.y);
  await page.locator("#vehicle-id").waitFor();
  await shoot("map-street");
  await page.click("#reserve");
  await page.locator("#booking-state", { hasText: "CONFIRMED" }).waitFor();
  await page.click("#booking-actions [data-action=START]");
  await page.locator("#booking-state", { hasText: "STARTED" }).waitFor();
  await page.click("#park-check");
  await page.locator("#park-answer").filter({ hasText: /: / }).waitFor();
  await shoot("booking-riding");
  await page.click("#booking-actions [data-action=FINISH]");
  await page.locator("#receipt-total").waitFor();
  await shoot("booking-receipt");

  await page.click("#nav-status");
  await page.locator("#status-table").waitFor();
  await shoot("status");
} finally {
  await browser.close();
}
