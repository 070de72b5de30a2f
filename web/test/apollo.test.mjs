// Apollo Client 4 as an app would configure it: HTTP for queries and mutations behind the
// automatic persisted queries link (APQ), graphql-ws for subscriptions (GraphQLWsLink) with the
// rider's token in connection_init. Against a live `mobility serve`.
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { CombinedGraphQLErrors } from "@apollo/client/errors";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { getMainDefinition } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

import { VEHICLE_UPDATES, VehicleSet, control, eventually, info, signUp } from "./support.mjs";

let live;
let possibleTypes;
const disposables = [];

before(async () => {
  live = await info();
  possibleTypes = await fetchPossibleTypes(live.apiUrl);
});

after(async () => {
  for (const dispose of disposables) await dispose();
});

/** Apollo's recommended set-up for unions and interfaces: possibleTypes from introspection. */
async function fetchPossibleTypes(apiUrl) {
  const response = await fetch(`${apiUrl}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: `{ __schema { types { kind name possibleTypes { name } } } }`,
    }),
  });
  const { data } = await response.json();
  const out = {};
  for (const type of data.__schema.types) {
    if (type.possibleTypes) out[type.name] = type.possibleTypes.map((t) => t.name);
  }
  return out;
}

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

/** Every HTTP request Apollo sends, as the server received it (method, body or query string). */
function recordingFetch(log) {
  return async (url, init = {}) => {
    const u = new URL(url);
    log.push({
      method: init.method ?? "GET",
      body: init.body ? JSON.parse(init.body) : null,
      params: Object.fromEntries(u.searchParams),
    });
    return fetch(url, init);
  };
}

function apollo({ token, log = [], useGETForHashedQueries = false, wsOptions = {} } = {}) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const http = new PersistedQueryLink({ sha256, useGETForHashedQueries }).concat(
    new HttpLink({ uri: `${live.apiUrl}/graphql`, headers, fetch: recordingFetch(log) }),
  );
  const wsClient = createClient({
    url: live.wsUrl,
    webSocketImpl: WebSocket,
    // Browsers cannot set headers on a WebSocket: the token goes in connection_init.
    connectionParams: token ? { Authorization: `Bearer ${token}` } : undefined,
    ...wsOptions,
  });
  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === "OperationDefinition" && definition.operation === "subscription";
    },
    new GraphQLWsLink(wsClient),
    http,
  );
  const client = new ApolloClient({ link, cache: new InMemoryCache({ possibleTypes }) });
  disposables.push(async () => {
    client.stop();
    await wsClient.dispose();
  });
  return { client, wsClient, log };
}

test("queries go through APQ: hash first, the document once, then only the hash", async () => {
  // A document no one has sent yet, so its hash is unknown to the server.
  const name = `Nearby_${randomUUID().replaceAll("-", "")}`;
  const query = gql`
    query ${name}($lat: Float!, $lon: Float!) {
      vehicles(near: { lat: $lat, lon: $lon, radiusMeters: 1500 }, first: 50) {
        id
        formFactor
        distanceMeters
        provider { id name }
      }
    }
  `;
  const first = apollo();
  const { data } = await first.client.query({ query, variables: live.centre });
  const ids = data.vehicles.map((v) => v.id);
  for (const id of live.liveVehicleIds) assert.ok(ids.includes(id), `${id} missing`);
  const distances = data.vehicles.map((v) => v.distanceMeters);
  assert.deepEqual(distances, [...distances].sort((a, b) => a - b), "nearest first");

  // Apollo's APQ exchange: the hash alone (unknown), then the hash with the document.
  assert.equal(first.log.length, 2);
  assert.equal(first.log[0].body.query, undefined);
  assert.equal(first.log[0].body.extensions.persistedQuery.version, 1);
  assert.equal(typeof first.log[1].body.query, "string");
  const hash = first.log[0].body.extensions.persistedQuery.sha256Hash;
  assert.equal(hash, sha256(first.log[1].body.query));

  // Another app instance: the server knows the hash now, one request without the document.
  const second = apollo();
  const again = await second.client.query({ query, variables: live.centre });
  assert.deepEqual(again.data.vehicles.map((v) => v.id), ids);
  assert.equal(second.log.length, 1);
  assert.equal(second.log[0].body.query, undefined);

  // And over GET, as a CDN-cached app would send it.
  const third = apollo({ useGETForHashedQueries: true });
  const viaGet = await third.client.query({ query, variables: live.centre });
  assert.deepEqual(viaGet.data.vehicles.map((v) => v.id), ids);
  assert.equal(third.log.length, 1);
  assert.equal(third.log[0].method, "GET");
  assert.equal(third.log[0].params.query, undefined);
});

test("a bad argument comes back as a GraphQL error with our stable code", async () => {
  const { client } = apollo();
  await assert.rejects(
    client.query({
      query: gql`
        query TooFar {
          vehicles(near: { lat: 52.5, lon: 13.4, radiusMeters: 1e9 }) { id }
        }
      `,
    }),
    (error) => {
      assert.ok(CombinedGraphQLErrors.is(error), `not a GraphQL error: ${error}`);
      assert.deepEqual(error.errors.map((e) => e.extensions.code), ["INVALID_RADIUS"]);
      return true;
    },
  );
});

const BOOKING = `
  id state vehicleId
  estimatedPrice { amountMinor currency }
  finalPrice { amountMinor currency }
`;

test("a ride with Apollo: mutations over HTTP, bookingUpdates over graphql-ws with the token in connection_init", async () => {
  const token = await signUp(live.apiUrl);
  const { client } = apollo({ token });
  const vehicleId = live.bookableVehicleIds[0];

  const reserved = await client.mutate({
    mutation: gql`
      mutation Reserve($vehicleId: ID!, $key: String!) {
        reserveVehicle(vehicleId: $vehicleId, idempotencyKey: $key) {
          __typename
          ... on BookingSuccess { booking { ${BOOKING} } }
          ... on BookingProblem { code message }
        }
      }
    `,
    variables: { vehicleId, key: randomUUID() },
  });
  const result = reserved.data.reserveVehicle;
  assert.equal(result.__typename, "BookingSuccess", JSON.stringify(result));
  const bookingId = result.booking.id;
  assert.equal(result.booking.state, "CONFIRMED");

  const states = [];
  let completed = false;
  const subscription = client
    .subscribe({
      query: gql`
        subscription Follow($id: ID!) { bookingUpdates(bookingId: $id) { ${BOOKING} } }
      `,
      variables: { id: bookingId },
    })
    .subscribe({
      next: ({ data, error }) => {
        if (error) states.push(`error: ${error.message}`);
        else states.push(data.bookingUpdates.state);
      },
      error: (error) => states.push(`error: ${error}`),
      complete: () => {
        completed = true;
      },
    });
  disposables.push(() => subscription.unsubscribe());
  await eventually(10_000, "the booking's current state", () => states.includes("CONFIRMED"));

  const action = (name, extra = "") => gql`
    mutation Act($bookingId: ID!, $key: String! ${extra ? ", $lat: Float!, $lon: Float!" : ""}) {
      ${name}(bookingId: $bookingId, idempotencyKey: $key ${extra}) {
        __typename
        ... on BookingSuccess { booking { ${BOOKING} } }
      }
    }
  `;
  const started = await client.mutate({
    mutation: action("startTrip"),
    variables: { bookingId, key: randomUUID() },
  });
  assert.equal(started.data.startTrip.__typename, "BookingSuccess");
  await eventually(10_000, "STARTED through the subscription", () => states.includes("STARTED"));

  const vehicle = live.centre;
  const ended = await client.mutate({
    mutation: action("endTrip", ", lat: $lat, lon: $lon"),
    variables: { bookingId, key: randomUUID(), lat: vehicle.lat, lon: vehicle.lon },
  });
  assert.equal(ended.data.endTrip.__typename, "BookingSuccess", JSON.stringify(ended.data));
  await eventually(10_000, "FINISHED and the end of the subscription", () => completed);
  assert.deepEqual(states, ["CONFIRMED", "STARTED", "FINISHED"]);
});

test("vehicleUpdates through GraphQLWsLink: snapshot, then a sync's delta; survives a restart", async () => {
  let connected = 0;
  const { client } = apollo({
    wsOptions: {
      retryAttempts: 50,
      shouldRetry: () => true,
      retryWait: () => new Promise((r) => setTimeout(r, 200)),
      on: { connected: () => (connected += 1) },
    },
  });
  const set = new VehicleSet();
  const errors = [];
  const subscription = client
    .subscribe({ query: gql(VEHICLE_UPDATES), variables: live.centre })
    .subscribe({
      next: ({ data, error }) => (error ? errors.push(error) : set.apply(data.vehicleUpdates)),
      error: (error) => errors.push(error),
    });
  disposables.push(() => subscription.unsubscribe());
  await eventually(10_000, "the snapshot", () => set.snapshots === 1);

  const moved = await control("move");
  await eventually(15_000, "the delta", () => set.differences(moved.after).length === 0);

  await control("restart");
  await eventually(30_000, "a new snapshot after the restart", () => set.snapshots === 2);
  assert.ok(connected >= 2);
  const movedAgain = await control("move");
  await eventually(15_000, "the delta after the restart", () => set.differences(movedAgain.after).length === 0);
  assert.deepEqual(errors, []);
});
