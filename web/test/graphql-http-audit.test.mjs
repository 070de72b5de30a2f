// The GraphQL-over-HTTP audit of the graphql-http package (the spec's reference
// implementation): every MUST passes. The SHOULDs and MAYs we do not follow are listed below
// and in docs/clients.md, each with its reason; the test fails if one of them starts passing
// (the list would be stale) or if another one fails.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import { serverAudits } from "graphql-http";

import { info } from "./support.mjs";

// id -> why we differ. Keep in step with docs/clients.md ("GraphQL over HTTP").
export const NOT_FOLLOWED = {};

let results;
before(async () => {
  const live = await info();
  const audits = serverAudits({ url: `${live.apiUrl}/graphql` });
  results = [];
  for (const audit of audits) {
    results.push({ id: audit.id, name: audit.name, result: await audit.fn() });
  }
});

test("every MUST of the GraphQL-over-HTTP spec passes", () => {
  const failed = results
    .filter((r) => r.name.startsWith("MUST") && r.result.status !== "ok")
    .map((r) => `${r.id} ${r.name}: ${r.result.reason}`);
  assert.deepEqual(failed, []);
});

test("the SHOULDs and MAYs we do not follow are exactly the documented ones", () => {
  const failed = Object.fromEntries(
    results
      .filter((r) => !r.name.startsWith("MUST") && r.result.status !== "ok")
      .map((r) => [r.id, `${r.name}: ${r.result.reason}`]),
  );
  assert.deepEqual(Object.keys(failed).sort(), Object.keys(NOT_FOLLOWED).sort(), JSON.stringify(failed, null, 2));
});
