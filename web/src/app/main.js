// The reference web app: everything a rider does, through the public API only (docs/web-app.md).
import "./style.css";

import { ApiError, gql, session, subscribe } from "./api.js";
import { FORM_FACTOR_COLOURS, MobilityMap } from "./map.js";
import { renderStatus } from "./status.js";
import { $, button, clear, el, money, show } from "./ui.js";

const BOOKING_FIELDS = `
  id state vehicleId providerId formFactor reservedUntil startedAt endedAt allowedActions
  estimatedPrice { amount currency } finalPrice { amount currency }
  receipt { lines { kind label amount { amount currency } } total { amount currency } minutes kilometers }`;
// What a trip action answers; a reservation may also send the rider to the operator's own app.
const ACTION_RESULT_FIELDS = `
  __typename
  ... on BookingSuccess { booking { ${BOOKING_FIELDS} } }
  ... on BookingProblem { code message }`;
const RESERVE_RESULT_FIELDS = `${ACTION_RESULT_FIELDS}
  ... on ExternalBooking { message webUri }`;
const ACTIONS = {
  START: ["Start", "startTrip"],
  PAUSE: ["Pause", "pauseTrip"],
  RESUME: ["Resume", "resumeTrip"],
  FINISH: ["End ride here", "endTrip"],
  CANCEL: ["Cancel", "cancelBooking"],
};

const state = { map: null, vehicle: null, booking: null, stopBooking: null, pickingDestination: false };

function say(text, kind = "info") {
  const message = $("#message");
  message.textContent = text;
  message.dataset.kind = kind;
}

function failed(error) {
  say(error instanceof ApiError ? `${error.message} (${error.code})` : String(error.message ?? error), "error");
}

// ------------------------------------------------------------------ account

function renderAccount() {
  const box = clear($("#account"));
  const current = session.get();
  if (current) {
    box.append(
      el("p", { id: "signed-in" }, `Signed in as ${current.email}`),
      button("Sign out", () => {
        session.set(null);
        renderAccount();
        state.map?.refreshTiles();
      }),
    );
    return;
  }
  const email = el("input", { type: "email", name: "email", placeholder: "email", autocomplete: "username" });
  const password = el("input", { type: "password", name: "password", placeholder: "password", autocomplete: "current-password" });
  const birth = el("input", { type: "date", name: "birthDate", value: "1990-01-01", title: "birth date (sign-up)" });
  const signIn = async (signUp) => {
    try {
      const data = signUp
        ? await gql(
            `mutation S($input: SignUpInput!) { signUp(input: $input) { accessToken refreshToken rider { email } } }`,
            { input: { email: email.value, password: password.value, birthDate: birth.value } },
          )
        : await gql(
            `mutation L($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken refreshToken rider { email } } }`,
            { e: email.value, p: password.value },
          );
      const auth = signUp ? data.signUp : data.logIn;
      session.set({ accessToken: auth.accessToken, refreshToken: auth.refreshToken, email: auth.rider.email });
      say(`Welcome, ${auth.rider.email}`);
      renderAccount();
      state.map?.refreshTiles();
    } catch (error) {
      failed(error);
    }
  };
  // A form, so that Enter logs in and password managers know the fields.
  const form = el(
    "form",
    { id: "sign-in" },
    email,
    password,
    birth,
    el("div", { class: "row" }, el("button", { type: "submit" }, "Log in"), button("Sign up", () => signIn(true))),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    signIn(false);
  });
  box.append(el("h2", {}, "Rider"), form);
}

// ------------------------------------------------------------------ filters

async function renderFilters() {
  const factors = $("#form-factors");
  for (const [value, colour] of Object.entries(FORM_FACTOR_COLOURS)) {
    const box = el("input", { type: "checkbox", name: "form_factor", value, checked: true });
    box.addEventListener("change", applyFilters);
    factors.append(el("label", { style: `--swatch: ${colour}` }, box, value.replace("_", " ")));
  }
  const { providers } = await gql(`{ providers { id name formFactors } }`);
  const operators = $("#operators");
  for (const provider of providers) {
    const box = el("input", { type: "checkbox", name: "provider", value: provider.id, checked: true });
    box.addEventListener("change", applyFilters);
    operators.append(el("label", {}, box, provider.name));
  }
}

function applyFilters() {
  const pick = (name) => {
    const boxes = [...document.querySelectorAll(`input[name=${name}]`)];
    const checked = boxes.filter((b) => b.checked).map((b) => b.value);
    return checked.length === boxes.length ? null : checked;
  };
  const formFactors = pick("form_factor");
  const providers = pick("provider");
  if (formFactors?.length === 0 || providers?.length === 0) {
    say("Choose at least one kind of vehicle and one operator.", "error");
    return;
  }
  state.map.setFilters({ formFactors, providers });
}

// ------------------------------------------------------------------ a vehicle

async function showVehicle(id) {
  const box = $("#details");
  show(box);
  clear(box).append(el("p", {}, "Loading…"));
  try {
    const { vehicle } = await gql(
      `query V($id: ID!) { vehicle(id: $id) {
         id formFactor propulsionType lat lon currentRangeMeters isReserved
         provider { name bookingApi } vehicleType { name }
         pricingPlan { name description } } }`,
      { id },
    );
    if (!vehicle) {
      clear(box).append(el("p", {}, "This vehicle is no longer available."));
      return;
    }
    state.vehicle = vehicle;
    const quote = await gql(
      `query Q($id: ID!) { quote(vehicleId: $id, minutes: 15) { id price { amount currency } rideMinutes validUntil } }`,
      { id },
    ).then((d) => d.quote, (error) => ({ error }));
    clear(box).append(
      el("h2", {}, vehicle.vehicleType?.name ?? vehicle.formFactor.toLowerCase()),
      el(
        "dl",
        { id: "vehicle-facts" },
        el("dt", {}, "Operator"), el("dd", {}, vehicle.provider?.name ?? "?"),
        el("dt", {}, "Vehicle"), el("dd", { id: "vehicle-id" }, vehicle.id),
        el("dt", {}, "Kind"), el("dd", {}, `${vehicle.formFactor.toLowerCase()}, ${vehicle.propulsionType.toLowerCase()}`),
        el("dt", {}, "Range"), el("dd", {}, vehicle.currentRangeMeters != null ? `${(vehicle.currentRangeMeters / 1000).toFixed(1)} km` : "—"),
        el("dt", {}, "Plan"), el("dd", {}, vehicle.pricingPlan?.name ?? "—"),
        el("dt", {}, "15 minutes"),
        el("dd", { id: "quote" }, quote.error ? quote.error.message : money(quote.price)),
      ),
      el(
        "div",
        { class: "row" },
        button("Reserve", () => reserve(vehicle, quote.error ? null : quote.id), { id: "reserve" }),
        button("Trip options to…", () => pickDestination(), { id: "trip-options" }),
      ),
    );
  } catch (error) {
    failed(error);
  }
}

function pickDestination() {
  state.pickingDestination = true;
  say("Click the map where you want to go.");
}

async function tripOptions(to) {
  state.pickingDestination = false;
  const box = $("#trip");
  show(box);
  clear(box).append(el("h2", {}, "Trip options"), el("p", {}, "Looking…"));
  try {
    const { tripOptions: options } = await gql(
      `query T($from: LatLonInput!, $to: LatLonInput!) {
         tripOptions(from: $from, to: $to, first: 5) {
           mode vehicle { id formFactor provider { name } } walkMinutes rideMinutes arrivalTime
           price { amount currency } } }`,
      { from: state.map.youAreHere(), to: { lat: to.lat, lon: to.lng } },
    );
    const list = el("ol", { id: "trip-list" });
    for (const option of options) {
      // Walking the whole way has no vehicle to show: a line, not a button.
      if (option.mode === "WALK") {
        list.append(el("li", {}, `Walk all the way: ${option.walkMinutes} min, free`));
        continue;
      }
      list.append(
        el(
          "li",
          {},
          button(
            `${option.vehicle.provider?.name ?? ""} ${option.vehicle.formFactor.toLowerCase()}: ` +
              `walk ${option.walkMinutes} min, ride ${option.rideMinutes} min, ${money(option.price)}`,
            () => showVehicle(option.vehicle.id),
            { class: "link" },
          ),
        ),
      );
    }
    clear(box).append(el("h2", {}, "Trip options"), options.length ? list : el("p", {}, "Nothing nearby."));
  } catch (error) {
    failed(error);
  }
}

// ------------------------------------------------------------------ booking

async function reserve(vehicle, offerId) {
  if (!session.token()) {
    say("Sign in to reserve.", "error");
    return;
  }
  try {
    const { reserveVehicle: result } = await gql(
      `mutation R($v: ID!, $k: String!, $o: String) {
         reserveVehicle(vehicleId: $v, idempotencyKey: $k, offerId: $o) { ${RESERVE_RESULT_FIELDS} } }`,
      { v: vehicle.id, k: crypto.randomUUID(), o: offerId },
    );
    handleResult(result);
    // The rider walks to the vehicle: where they are is now where it is (drag the marker to
    // where the ride ends).
    if (result.__typename === "BookingSuccess") state.map.you.setLngLat([vehicle.lon, vehicle.lat]);
  } catch (error) {
    failed(error);
  }
}

function handleResult(result) {
  if (result.__typename === "BookingSuccess") {
    say(`Booking ${result.booking.state.toLowerCase()}`);
    followBooking(result.booking);
  } else if (result.__typename === "ExternalBooking") {
    say(result.message);
    if (result.webUri?.startsWith("https://")) {
      $("#message").append(" ", el("a", { href: result.webUri, target: "_blank", rel: "noopener noreferrer" }, "Open the operator's app"));
    }
  } else {
    say(`${result.message} (${result.code})`, "error");
  }
}

function followBooking(booking) {
  state.booking = booking;
  renderBooking();
  if (state.stopBooking && state.followed === booking.id) return;
  state.stopBooking?.();
  state.followed = booking.id;
  state.stopBooking = subscribe(
    `subscription B($id: ID!) { bookingUpdates(bookingId: $id) { ${BOOKING_FIELDS} } }`,
    { id: booking.id },
    {
      next: (data) => {
        state.booking = data.bookingUpdates;
        renderBooking();
      },
      error: (error) => failed(error),
    },
  );
}

async function act(action) {
  const [, mutation] = ACTIONS[action];
  const booking = state.booking;
  const variables = { b: booking.id, k: crypto.randomUUID() };
  let signature = "$b: ID!, $k: String!";
  let args = "bookingId: $b, idempotencyKey: $k";
  if (action === "FINISH") {
    Object.assign(variables, state.map.youAreHere());
    signature += ", $lat: Float!, $lon: Float!";
    args += ", lat: $lat, lon: $lon";
  }
  try {
    const data = await gql(`mutation A(${signature}) { ${mutation}(${args}) { ${ACTION_RESULT_FIELDS} } }`, variables);
    handleResult(data[mutation]);
  } catch (error) {
    failed(error);
  }
}

async function mayIParkHere() {
  const here = state.map.youAreHere();
  try {
    const { rideEndCheck: answer } = await gql(
      `query P($lat: Float!, $lon: Float!, $v: ID) {
         rideEndCheck(lat: $lat, lon: $lon, vehicleId: $v) { allowed reason zone { name geometry } } }`,
      { ...here, v: state.booking?.vehicleId },
    );
    state.map.highlight(answer.zone?.geometry ?? null);
    $("#park-answer").textContent = `${answer.allowed ? "Yes" : "No"}: ${answer.reason}`;
    $("#park-answer").dataset.allowed = String(answer.allowed);
  } catch (error) {
    failed(error);
  }
}

function renderBooking() {
  const booking = state.booking;
  const box = $("#booking");
  show(box);
  const actions = el("div", { class: "row", id: "booking-actions" });
  for (const action of booking.allowedActions) {
    if (ACTIONS[action]) actions.append(button(ACTIONS[action][0], () => act(action), { "data-action": action }));
  }
  const parts = [
    el("h2", {}, "Your booking"),
    el("p", {}, "State: ", el("strong", { id: "booking-state" }, booking.state)),
    el("p", {}, `Vehicle ${booking.vehicleId}`),
    actions,
  ];
  if (["CONFIRMED", "STARTED", "PAUSED"].includes(booking.state)) {
    parts.push(
      el("div", { class: "row" }, button("May I park here?", mayIParkHere, { id: "park-check" })),
      el("p", { id: "park-answer" }),
    );
  }
  if (booking.receipt) {
    const lines = el("table", { id: "receipt" });
    for (const line of booking.receipt.lines) {
      lines.append(el("tr", {}, el("td", {}, line.label), el("td", {}, money(line.amount))));
    }
    lines.append(el("tr", { class: "total" }, el("td", {}, "Total"), el("td", { id: "receipt-total" }, money(booking.receipt.total))));
    parts.push(el("h3", {}, "Receipt"), lines);
  }
  clear(box).append(...parts);
}

// ------------------------------------------------------------------ pages

function route() {
  const status = location.hash === "#/status";
  for (const id of ["filters", "details", "trip", "booking"]) {
    const section = $(`#${id}`);
    if (status) section.hidden = true;
    else if (id === "filters" || section.childElementCount) section.hidden = false;
  }
  $("#status").hidden = !status;
  if (status) renderStatus($("#status"), { failed });
}

async function start() {
  renderAccount();
  // Where the map opens: the middle of what there is to see (the vehicles' TileJSON bounds).
  const [tilejson, config] = await Promise.all([
    fetch("/tiles/vehicles.json").then((r) => r.json()),
    fetch("/app/config.json").then((r) => r.json()),
  ]);
  const [lon, lat] = tilejson.center;
  state.map = new MobilityMap(
    "map",
    { center: [lon, lat], zoom: 13, maxZoom: tilejson.maxzoom, basemapStyleUrl: config.basemapStyleUrl },
    {
      onVehicle: showVehicle,
      onPoint: (lngLat) => {
        if (state.pickingDestination) tripOptions(lngLat);
      },
    },
  );
  // For people and for tests: the map and the app's state, from the console.
  window.mobility = { map: state.map.map, you: state.map.you, state, ready: state.map.loaded };
  await renderFilters().catch(failed);
  window.addEventListener("hashchange", route);
  window.addEventListener("mobility:signed-out", () => {
    renderAccount();
    say("Your session ended: log in again.", "error");
    state.map.refreshTiles();
  });
  route();
}

start().catch(failed);
