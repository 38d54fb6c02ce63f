// The workers panel on the experiments page: each worker, what it trains and how fast, and how
// many experiments wait in each queue; refreshed every five seconds.
"use strict";

(() => {
  const body = document.querySelector("#workers tbody");
  const queues = document.getElementById("queues");

  function trains(w) {
    if (w.experiment_id) {
      return bn.el("a", { href: `/experiments/${w.experiment_id}` }, w.experiment_id.slice(0, 8));
    }
    return w.busy ? "busy" : "idle";
  }

  function row(w) {
    return bn.el(
      "tr",
      { "data-id": w.id, className: w.alive ? "" : "muted" },
      bn.el("td", {}, w.id),
      bn.el("td", {}, w.device || "–"),
      bn.el("td", {}, w.queues.join(", ")),
      bn.el("td", {}, w.alive ? trains(w) : "gone"),
      bn.el("td", { className: "num" }, bn.number(w.steps_per_s)),
      bn.el("td", {}, bn.when(w.last_seen)),
    );
  }

  async function refresh() {
    const { ok, body: fleet } = await bn.api("/api/v1/workers");
    if (ok) {
      body.replaceChildren(...fleet.workers.map(row));
      if (!fleet.workers.length) {
        body.append(bn.el("tr", {}, bn.el("td", { colSpan: 6 }, "No worker has been seen.")));
      }
      queues.textContent =
        "Waiting: " +
        Object.entries(fleet.queues)
          .map(([name, n]) => `${name} ${n === null ? "?" : n}`)
          .join(", ");
    }
    setTimeout(refresh, 5000);
  }

  refresh();
})();
