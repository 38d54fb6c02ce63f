// One sweep: its points with live status, the sensitivity plot and the findings; polls every
// second while any point trains.
"use strict";

(() => {
  const id = document.querySelector("main").dataset.sweepId;
  const base = `/api/v1/sweeps/${id}`;
  const $ = (name) => document.getElementById(name);
  let round = 0;

  function values(v) {
    return Object.entries(v).map(([path, value]) => `${path.split(".").pop()} = ${JSON.stringify(value)}`).join(", ");
  }

  function row(p) {
    return bn.el(
      "tr",
      { "data-index": p.index },
      bn.el("td", { className: "num" }, String(p.index)),
      bn.el("td", {}, values(p.values)),
      bn.el("td", {}, bn.el("span", { className: `status ${p.status}` }, p.status)),
      bn.el("td", { className: "num" }, bn.el("progress", { max: 1, value: p.progress }),
        ` ${Math.round(p.progress * 100)}%`),
      bn.el("td", { className: "num" }, bn.timeLeft(p)),
      bn.el("td", {}, p.worker || ""),
      bn.el("td", {}, bn.el("a", { href: `/experiments/${p.experiment_id}` }, p.name)),
    );
  }

  function plotUrl(fmt, live) {
    const query = new URLSearchParams();
    if ($("metric").value) query.set("metric", $("metric").value);
    if (live) query.set("v", String(round));
    const q = query.toString();
    return `${base}/plots/sensitivity.${fmt}${q ? "?" + q : ""}`;
  }

  function drawPlot(live) {
    bn.swapImage($("sensitivity"), plotUrl("png", live));
    $("plot-svg").href = plotUrl("svg", false);
    $("plot-json").href = plotUrl("json", false);
  }

  async function drawFindings() {
    const query = $("metric").value ? `?metric=${$("metric").value}` : "";
    const reply = await bn.api(`${base}/findings${query}`);
    if (!reply.ok) return;
    const lines = reply.body.statements;
    $("statements").replaceChildren(
      ...(lines.length ? lines.map((s) => bn.el("li", {}, s)) : [bn.el("li", { className: "muted" }, "none yet")]),
    );
  }

  async function refresh() {
    round += 1;
    const reply = await bn.api(base);
    if (!reply.ok) {
      bn.showError($("error"), `could not load the sweep (${reply.status})`);
      return true;
    }
    bn.showError($("error"), "");
    const s = reply.body;
    $("status").textContent = s.status;
    $("status").className = `status ${s.status}`;
    $("progress").value = s.progress;
    $("percent").textContent = `${Math.round(s.progress * 100)}%`;
    $("time-left").textContent = bn.timeLeft(s);
    $("cancel").hidden = !bn.running(s);
    $("axes").textContent = `${s.method} over ${Object.keys(s.axes).join(", ")}; ${s.point_count} points`;
    document.querySelector("#points tbody").replaceChildren(...s.points.map(row));
    const live = bn.running(s);
    drawPlot(live);
    await drawFindings();
    return live;
  }

  $("cancel").addEventListener("click", async () => {
    const reply = await bn.api(`${base}/cancel`, { method: "POST" });
    if (!reply.ok) bn.showError($("error"), `could not cancel (${reply.status})`);
    refresh();
  });
  $("metric").addEventListener("change", () => {
    drawPlot(false);
    drawFindings();
  });
  bn.poll(refresh, 1000);
})();
