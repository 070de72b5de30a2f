// The API, as any client of it: GraphQL over HTTP (POST /graphql) and subscriptions over
// graphql-ws on the same path. The rider's session lives in sessionStorage (the tab's life).
import { createClient } from "graphql-ws";

const SESSION_KEY = "mobility.session";

export class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export const session = {
  get() {
    const raw = sessionStorage.getItem(SESSION_KEY);
    return raw ? JSON.parse(raw) : null;
  },
  set(value) {
    if (value) sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
    else sessionStorage.removeItem(SESSION_KEY);
  },
  token() {
    return this.get()?.accessToken ?? null;
  },
};

const EXPIRED = new Set(["TOKEN_EXPIRED", "INVALID_TOKEN"]);
let refreshing = null;

/** A new access token from the refresh token (one refresh at a time), or the session ends. */
async function refresh() {
  const current = session.get();
  if (!current?.refreshToken) return false;
  refreshing ??= send(
    `mutation R($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }`,
    { t: current.refreshToken },
    null,
  )
    .then((data) => {
      session.set({ ...current, ...data.refreshSession });
      return true;
    })
    .catch(() => {
      session.set(null);
      window.dispatchEvent(new Event("mobility:signed-out"));
      return false;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** One GraphQL operation; errors become an ApiError with the API's stable code. An access
 * token that has run out is refreshed once and the operation sent again. */
export async function gql(query, variables = {}, { token = session.token() } = {}) {
  try {
    return await send(query, variables, token);
  } catch (error) {
    if (token && EXPIRED.has(error.code) && token === session.token() && (await refresh())) {
      return send(query, variables, session.token());
    }
    throw error;
  }
}

async function send(query, variables, token) {
  const headers = { "content-type": "application/json", accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("NETWORK", "the API cannot be reached");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP_${response.status}`, `the API answered HTTP ${response.status}`);
  }
  if (body.errors?.length) {
    const [first] = body.errors;
    throw new ApiError(first.extensions?.code ?? "ERROR", first.message);
  }
  return body.data;
}

let wsClient = null;
let wsToken;

/** The page's one websocket, re-opened when the rider signs in or out. */
function ws() {
  const token = session.token();
  if (wsClient && wsToken === token) return wsClient;
  wsClient?.dispose();
  wsToken = token;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
  wsClient = createClient({
    url,
    lazy: true,
    retryAttempts: Infinity,
    connectionParams: () => (token ? { Authorization: `Bearer ${token}` } : {}),
  });
  return wsClient;
}

/** Subscribe; returns a function that ends the subscription. */
export function subscribe(query, variables, { next, error }) {
  return ws().subscribe(
    { query, variables },
    {
      next: (message) => {
        if (message.errors?.length) {
          const [first] = message.errors;
          error(new ApiError(first.extensions?.code ?? "ERROR", first.message));
        } else {
          next(message.data);
        }
      },
      error: (err) => error(err instanceof Error ? err : new ApiError("SUBSCRIPTION", String(err?.reason ?? err))),
      complete: () => {},
    },
  );
}
