// The reference subscription client, graphql-ws (behind Apollo, urql and Relay subscriptions),
// against a live `mobility serve`: frames, live vehicles through a sync in another process,
// keep-alive, a server restart, and protocol-level errors with our stable codes.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { VEHICLE_UPDATES, VehicleSet, control, eventually, info, sleep, within } from "./support.mjs";

let live;
before(async () => {
  live = await info();
});

const clients = [];
after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
});

function client(options = {}) {
  const c = createClient({ url: live.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, ...options });
  clients.push(c);
  return c;
}

/** Subscribes and feeds every result into a VehicleSet; returns it with the iterator. */
function follow(c) {
  const set = new VehicleSet();
  const iterator = c.iterate({ query: VEHICLE_UPDATES, variables: live.centre });
  const errors = [];
  (async () => {
    try {
      for await (const result of iterator) {
        if (result.errors) errors.push(...result.errors);
        else set.apply(result.data.vehicleUpdates);
      }
    } catch (error) {
      errors.push(error);
    }
  })();
  return { set, iterator, errors };
}

test("every server message is a JSON text frame with a type", async () => {
  // Browsers hand binary frames to a client as Blobs, which graphql-ws cannot read: a server
  // that sends bytes fails the first message ("Message is missing the 'type' property").
  const frames = [];
  const socket = new WebSocket(live.wsUrl, "graphql-transport-ws");
  socket.on("message", (data, isBinary) => frames.push({ data: data.toString(), isBinary }));
  await within(5000, "the socket to open", new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  }));
  socket.send(JSON.stringify({ type: "connection_init" }));
  socket.send(
    JSON.stringify({
      id: "1",
      type: "subscribe",
      payload: { query: VEHICLE_UPDATES, variables: live.centre },
    }),
  );
  // The ack, the snapshot, and at least one keep-alive ping from the server.
  await eventually(10_000, "ack, snapshot and a server ping", () => {
    const types = frames.map((f) => JSON.parse(f.data).type);
    return types.includes("connection_ack") && types.includes("next") && types.includes("ping");
  });
  socket.close(1000);
  assert.ok(frames.length >= 3);
  for (const frame of frames) {
    assert.equal(frame.isBinary, false, `a binary frame: ${frame.data.slice(0, 80)}`);
    assert.equal(typeof JSON.parse(frame.data).type, "string");
  }
});

test("vehicleUpdates: a snapshot, then the delta of a sync run by another process", async () => {
  const { set, errors } = follow(client());
  await eventually(10_000, "the snapshot", () => set.snapshots === 1);
  assert.equal(set.messages[0].kind, "SNAPSHOT");
  for (const id of live.liveVehicleIds) assert.ok(set.vehicles.has(id), `${id} not in the snapshot`);

  const mark = set.messages.length;
  const moved = await control("move"); // edits the feed, then `mobility sync` in its own process
  await eventually(15_000, "the moved vehicles' new positions", () => set.differences(moved.after).length === 0);
  await sleep(500); // anything else that was going to come
  assert.deepEqual([...set.changedSince(mark)].sort(), [...moved.moved].sort(), "only the moved vehicles change");
  assert.deepEqual(set.differences(moved.after), []);
  assert.deepEqual(errors, []);
});

test("keep-alive: the server pings, the client's pings are answered", async () => {
  let serverPings = 0;
  let pongs = 0;
  const c = client({
    keepAlive: 300, // the client pings every 300 ms and expects a pong
    on: {
      ping: (received) => {
        if (received) serverPings += 1;
      },
      pong: (received) => {
        if (received) pongs += 1;
      },
    },
  });
  const { set, errors } = follow(c);
  await eventually(10_000, "the snapshot", () => set.snapshots === 1);
  const wait = Math.ceil(live.keepAliveSeconds * 1000 * 2.5);
  await eventually(wait + 5000, "two server pings and two pongs", () => serverPings >= 2 && pongs >= 2);
  assert.deepEqual(errors, []);
});

test("a server restart: the client reconnects, resubscribes and sees the next sync", async () => {
  let connected = 0;
  let closed = 0;
  const c = client({
    retryAttempts: 50,
    shouldRetry: () => true,
    retryWait: () => sleep(200),
    on: {
      connected: () => {
        connected += 1;
      },
      closed: () => {
        closed += 1;
      },
    },
  });
  const { set, errors } = follow(c);
  await eventually(10_000, "the first snapshot", () => set.snapshots === 1);
  await control("restart"); // SIGKILL, then a new process on the same port
  await eventually(30_000, "a reconnect and a new snapshot", () => set.snapshots === 2);
  assert.ok(closed >= 1, "the client saw the connection drop");
  assert.ok(connected >= 2, "the client connected again");
  const moved = await control("move");
  await eventually(15_000, "the sync after the restart", () => set.differences(moved.after).length === 0);
  assert.deepEqual(errors, []);
});

async function firstError(c, payload) {
  try {
    for await (const result of c.iterate(payload)) {
      return { result };
    }
    return { completed: true };
  } catch (error) {
    return { error };
  }
}

// Depth 11 against the limit of 10 (introspection fields are not counted, so a real path).
const DEEP = `{ tripOptions(from: {lat: 0, lon: 0}, to: {lat: 0, lon: 0.01}) { offer { vehicle {
  station { vehicleTypesAvailable { vehicleType { defaultPricingPlan { provider { health {
  validation { sample { code } } } } } } } } } } } }`;

for (const [name, payload, code] of [
  ["a syntax error", { query: "subscription { vehicleUpdates(" }, "GRAPHQL_PARSE_FAILED"],
  ["a document too deep", { query: DEEP }, "QUERY_TOO_DEEP"],
  ["too many tokens", { query: `{ ${"__typename ".repeat(2500)}}` }, "TOO_MANY_TOKENS"],
  ["an unknown operation", { query: "query A { __typename }", operationName: "B" }, "OPERATION_NOT_FOUND"],
  ["an unknown field", { query: "subscription { vehiclesEverywhere }" }, "GRAPHQL_VALIDATION_FAILED"],
]) {
  test(`${name} reaches the client as an error message with code ${code}, the socket stays`, async () => {
    let closed = 0;
    let connected = 0;
    // Not lazy: the client keeps its socket open with no operation running, so a close can
    // only come from the server.
    const c = client({
      lazy: false,
      on: { closed: () => (closed += 1), connected: () => (connected += 1) },
    });
    const outcome = await within(10_000, "the error", firstError(c, payload));
    assert.ok(outcome.error, `expected an error, got ${JSON.stringify(outcome)}`);
    assert.ok(Array.isArray(outcome.error), `an error message carries GraphQL errors, got ${outcome.error}`);
    assert.deepEqual(outcome.error.map((e) => e.extensions?.code), [code]);
    // The socket is still usable: the same client runs a subscription on it.
    const { set } = follow(c);
    await eventually(10_000, "a snapshot on the same socket", () => set.snapshots === 1);
    assert.equal(closed, 0, "the server closed the socket");
    assert.equal(connected, 1);
  });
}

test("credentials in connection_init that are malformed close the socket with 4403", async () => {
  let closeCode;
  const c = client({
    connectionParams: { Authorization: 42 },
    on: { closed: (event) => (closeCode = event.code) },
  });
  const outcome = await within(10_000, "the refusal", firstError(c, { query: "{ __typename }" }));
  assert.ok(outcome.error);
  assert.equal(closeCode, 4403);
});
