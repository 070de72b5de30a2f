// A real browser (Debian's Chromium, driven by Playwright) against a live `mobility serve`:
// GraphiQL works with no internet (every request it makes goes to the API's own origin), a
// query typed into its editor runs, a subscription shows its messages; and CORS lets a page
// of an allowed origin call the API while another origin's page is refused.
import assert from "node:assert/strict";
import { test } from "node:test";

import { control, eventually, gql, liveBrowser } from "./support.mjs";

let live;
let browser;
liveBrowser((l, b) => {
  live = l;
  browser = b;
});

async function openGraphiQL() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const requests = [];
  page.on("request", (request) => requests.push(request.url()));
  const failures = [];
  page.on("pageerror", (error) => failures.push(String(error)));
  // A request the Content-Security-Policy blocks never reaches the network (no "request"
  // event) but is reported on the console: an asset from another host fails here.
  page.on("console", (message) => {
    if (message.type() === "error") failures.push(`console: ${message.text()}`);
  });
  const response = await page.goto(`${live.apiUrl}/graphql`);
  assert.equal(response.status(), 200);
  await page.locator(".graphiql-query-editor .CodeMirror").waitFor({ timeout: 20_000 });
  return { context, page, requests, failures, headers: response.headers() };
}

async function editorText(page) {
  return page.evaluate(
    () => document.querySelector(".graphiql-query-editor .CodeMirror").CodeMirror.getValue(),
  );
}

async function responseText(page) {
  return page.evaluate(
    () => document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror.getValue() ?? "",
  );
}

async function typeQuery(page, query) {
  await page.locator(".graphiql-query-editor .CodeMirror").click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  // Typed on a phone-class CPU (8 times slower): a page whose renders lag behind the keys
  // scrambles the text here every time, not once in a while on a loaded CI machine.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: 8 });
  try {
    await page.keyboard.type(query);
  } finally {
    await cdp.send("Emulation.setCPUThrottlingRate", { rate: 1 });
    await cdp.detach();
  }
  assert.equal(await editorText(page), query, "the editor holds what was typed");
  // GraphiQL parses the document a moment after the last keystroke and picks the transport
  // (HTTP or WebSocket) from that parse: a user's pause before pressing Run.
  await page.waitForTimeout(600);
}

test("GraphiQL loads with no third-party host and runs a query typed into its editor", async () => {
  const { context, page, requests, failures, headers } = await openGraphiQL();
  try {
    const query = `{ vehicles(near: {lat: ${live.centre.lat}, lon: ${live.centre.lon}, radiusMeters: 1500}, first: 5) { id distanceMeters } }`;
    await typeQuery(page, query);
    // The query is kept in the address, so a reload or a shared link opens it again.
    assert.equal(new URL(page.url()).searchParams.get("query"), query);
    await page.reload();
    await page.locator(".graphiql-query-editor .CodeMirror").waitFor({ timeout: 20_000 });
    assert.equal(await editorText(page), query, "the reloaded page holds the query");
    await page.locator(".graphiql-execute-button").click();
    const expected = await gql(live.apiUrl, query);
    await eventually(15_000, "the answer in the response pane", async () => {
      const text = await responseText(page);
      try {
        return JSON.stringify(JSON.parse(text).data) === JSON.stringify(expected);
      } catch {
        return false;
      }
    });
    const origin = new URL(live.apiUrl).origin;
    const foreign = requests.filter((url) => !url.startsWith("data:") && new URL(url).origin !== origin);
    assert.deepEqual(foreign, [], "GraphiQL asked another host");
    assert.match(headers["content-security-policy"] ?? "", /default-src 'self'/);
    assert.deepEqual(failures, []);
  } finally {
    await context.close();
  }
});

test("a subscription run from GraphiQL shows its messages", async () => {
  const { context, page, failures } = await openGraphiQL();
  try {
    const subscription = `subscription { vehicleUpdates(near: {lat: ${live.centre.lat}, lon: ${live.centre.lon}, radiusMeters: 1500}, first: 100) { kind updated { id lat } } }`;
    await typeQuery(page, subscription);
    await page.locator(".graphiql-execute-button").click();
    await eventually(15_000, "the SNAPSHOT in the response pane", async () =>
      (await responseText(page)).includes('"SNAPSHOT"'),
    );
    const moved = await control("move");
    await eventually(15_000, "a DELTA naming a moved vehicle", async () => {
      const text = await responseText(page);
      return text.includes('"DELTA"') && moved.moved.some((id) => text.includes(id));
    });
    assert.deepEqual(failures, []);
  } finally {
    await context.close();
  }
});

async function fromPage(origin, script, argument) {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await page.goto(`${origin}/pages/cors.html`);
    return await page.evaluate(script, argument);
  } finally {
    await context.close();
  }
}

async function fetchFrom(origin) {
  return fromPage(
    origin,
    async (apiUrl) => {
      try {
        const response = await fetch(`${apiUrl}/graphql`, {
          method: "POST",
          // Both headers make this a non-simple request: the browser sends a preflight.
          headers: { "content-type": "application/json", authorization: "Bearer not-a-token" },
          body: JSON.stringify({ query: "{ __typename }" }),
        });
        return { status: response.status, body: await response.json() };
      } catch (error) {
        return { error: String(error) };
      }
    },
    live.apiUrl,
  );
}

/** From a page of `origin`: a graphql-transport-ws handshake with the token in
 * connection_init, as a browser app must send it; what came back first. */
async function socketFrom(origin) {
  return fromPage(
    origin,
    (wsUrl) =>
      new Promise((resolve) => {
        const socket = new WebSocket(wsUrl, "graphql-transport-ws");
        socket.onopen = () =>
          socket.send(JSON.stringify({ type: "connection_init", payload: { Authorization: "Bearer x" } }));
        socket.onmessage = (event) => {
          resolve({ message: JSON.parse(event.data).type, binary: typeof event.data !== "string" });
          socket.close();
        };
        socket.onclose = (event) => resolve({ closed: event.code });
      }),
    live.wsUrl,
  );
}

test("CORS: a page of an allowed origin calls the API; another origin is refused", async () => {
  const allowed = await fetchFrom(live.corsAllowedOrigin);
  assert.equal(allowed.status, 200, JSON.stringify(allowed));
  assert.equal(allowed.body.data.__typename, "Query");

  const refused = await fetchFrom(live.corsRefusedOrigin);
  assert.ok(refused.error, `expected the browser to refuse, got ${JSON.stringify(refused)}`);
  assert.match(refused.error, /Failed to fetch/);
});

test("WebSocket: a page of an allowed origin connects, another origin's handshake is refused", async () => {
  assert.deepEqual(await socketFrom(live.corsAllowedOrigin), { message: "connection_ack", binary: false });
  const refused = await socketFrom(live.corsRefusedOrigin);
  assert.ok(refused.closed, `expected the handshake to be refused, got ${JSON.stringify(refused)}`);
});

test("CORS preflight: allowed origin gets the methods and headers, another gets none", async () => {
  const preflight = (origin) =>
    fetch(`${live.apiUrl}/graphql`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
  const ok = await preflight(live.corsAllowedOrigin);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("access-control-allow-origin"), live.corsAllowedOrigin);
  assert.match(ok.headers.get("access-control-allow-methods"), /POST/);
  assert.match(ok.headers.get("access-control-allow-headers").toLowerCase(), /authorization/);
  const refused = await preflight(live.corsRefusedOrigin);
  assert.equal(refused.headers.get("access-control-allow-origin"), null);
});
