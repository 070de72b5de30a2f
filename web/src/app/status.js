// The operator status page: every provider's health, data age, last error and the findings of
// its latest validation, as the API tells anyone (`providers { health }`); staff act on it with
// the admin mutations.
import { gql } from "./api.js";
import { button, clear, el } from "./ui.js";

const QUERY = `{
  providers {
    id name enabled bookingApi vehicleCount stationCount
    health {
      status dataAgeSeconds lastSuccessAt lastError consecutiveFailures
      validation { errors warnings sample { severity code feed message } }
    }
  }
}`;

function age(seconds) {
  if (seconds == null) return "—";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

export async function renderStatus(box, { failed }) {
  clear(box).append(
    el("h2", {}, "Operator status"),
    button("Refresh", () => renderStatus(box, { failed }), { id: "status-refresh" }),
  );
  try {
    const { providers } = await gql(QUERY);
    const table = el(
      "table",
      { id: "status-table" },
      el("tr", {}, ...["Operator", "Status", "Data age", "Vehicles", "Last error", "Findings"].map((h) => el("th", {}, h))),
    );
    for (const p of providers) {
      const health = p.health ?? {};
      const validation = health.validation;
      const findings = validation
        ? `${validation.errors} errors, ${validation.warnings} warnings` +
          (validation.sample.length ? `: ${validation.sample.map((f) => `${f.code} (${f.feed})`).join(", ")}` : "")
        : "—";
      table.append(
        el(
          "tr",
          { "data-provider": p.id, "data-status": health.status ?? "" },
          el("td", {}, p.name, el("br"), el("small", {}, p.id)),
          el("td", { class: `status-${(health.status ?? "").toLowerCase()}` }, health.status ?? "—"),
          el("td", {}, age(health.dataAgeSeconds)),
          el("td", {}, String(p.vehicleCount)),
          el("td", {}, health.lastError ?? ""),
          el("td", {}, findings),
        ),
      );
    }
    box.append(table);
  } catch (error) {
    failed(error);
  }
}
