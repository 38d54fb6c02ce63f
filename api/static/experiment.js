// One experiment: polls the JSON API every second while it trains and redraws what changed.
"use strict";

(() => {
  const id = document.querySelector("main").dataset.experimentId;
  const base = `/api/v1/experiments/${id}`;
  const $ = (name) => document.getElementById(name);
  const controls = { layer: $("layer"), step: $("step"), seed: $("seed"), epoch: $("epoch") };
  // Which query parameters each plot takes.
  const takes = {
    loss: [],
    activations: ["layer", "step", "seed"],
    distributions: ["layer", "seed"],
    eval: [],
    fit: ["epoch", "seed"],
    landscape: [],
    ics: [],
  };
  // The order on the page: the dropout study's fit first, then loss beside the distributions.
  const order = ["fit", "loss", "distributions", "activations", "eval", "landscape", "ics"];
  const wide = new Set(["activations", "eval"]);
  let last = null; // the experiment as last drawn
  let round = 0;
  const images = {};

  function fillSelect(select, values, keepFirst = true) {
    const current = select.value;
    const first = keepFirst ? [select.options[0]] : [];
    const options = values.map((v) => bn.el("option", { value: String(v) }, String(v)));
    select.replaceChildren(...first, ...options);
    if ([...select.options].some((o) => o.value === current)) select.value = current;
  }

  function plotUrl(name, fmt, live) {
    const query = new URLSearchParams();
    for (const key of takes[name] || []) {
      if (controls[key] && controls[key].value !== "") query.set(key, controls[key].value);
    }
    // A new URL per poll round while training: the server re-renders at most once a second.
    if (live) query.set("v", String(round));
    const q = query.toString();
    return `${base}/plots/${name}.${fmt}${q ? "?" + q : ""}`;
  }

  function drawPlots(index, live) {
    const box = $("plots");
    for (const name of order.filter((n) => n in index.plots)) {
      if (!images[name]) {
        const img = bn.el("img", { alt: `${name} plot`, className: "plot", "data-plot": name });
        const caption = bn.el("figcaption", {});
        images[name] = { img, caption };
        box.append(bn.el("figure", { className: wide.has(name) ? "wide" : "" }, img, caption));
      }
      const { img, caption } = images[name];
      caption.replaceChildren(
        `${name} · `,
        bn.el("a", { href: plotUrl(name, "svg", false) }, "SVG"),
        " · ",
        bn.el("a", { href: plotUrl(name, "json", false) }, "data"),
      );
      bn.swapImage(img, plotUrl(name, "png", live));
    }
    $("gif-link").href = plotUrl("activations", "gif", false).replace(/step=[^&]*&?/, "");
  }

  function drawIndex(index) {
    fillSelect(controls.layer, index.layers);
    fillSelect(controls.step, index.steps);
    fillSelect(controls.seed, index.seeds, false);
    fillSelect(controls.epoch, index.epochs);
    $("epoch-label").hidden = !("fit" in index.plots);
  }

  function drawSummary(e) {
    const status = $("status");
    status.textContent = e.status;
    status.className = `status ${e.status}`;
    $("progress").value = e.progress;
    $("percent").textContent = `${Math.round(e.progress * 100)}%`;
    $("time-left").textContent = bn.timeLeft(e);
    $("cancel").hidden = !bn.running(e);
    const times = [`created ${bn.when(e.created_at)}`];
    if (e.started_at) times.push(`started ${bn.when(e.started_at)}`);
    if (e.finished_at) {
      const took = (Date.parse(e.finished_at) - Date.parse(e.started_at || e.created_at)) / 1000;
      times.push(`finished ${bn.when(e.finished_at)} (${bn.duration(took)})`);
    }
    $("times").textContent = times.join(" · ");
    const d = e.dataset; // which data set the worker really used, and why
    $("dataset").hidden = !d;
    if (d) {
      const from = d.where ? `${d.source}, ${d.where}` : d.source;
      const instead = d.used !== d.requested ? ` instead of ${d.requested}: ${d.reason}` : "";
      $("dataset").textContent = `data set: ${d.used} (${from})${instead}`;
    }
    bn.showError($("error"), e.error || "");
    $("compare-link").href = `/compare?ids=${e.id}`;
  }

  function drawRuns(e) {
    $("runs").querySelector("tbody").replaceChildren(
      ...e.runs.map((r) => {
        const summary = Object.entries(r.summary || {})
          .map(([k, v]) => `${k} ${bn.number(v)}`)
          .join(", ");
        return bn.el(
          "tr",
          {},
          bn.el("td", {}, r.variant),
          bn.el("td", { className: "num" }, String(r.seed)),
          bn.el("td", {}, bn.el("span", { className: `status ${r.status}` }, r.status)),
          bn.el("td", { className: "muted" }, summary),
          bn.el(
            "td",
            {},
            bn.el("a", { href: `/api/v1/runs/${r.id}/metrics` }, "metrics"),
            " · ",
            bn.el("a", { href: `/api/v1/runs/${r.id}/histograms` }, "histograms"),
          ),
        );
      }),
    );
    $("spec").textContent = JSON.stringify(e.spec, null, 2);
  }

  function drawFindings(f) {
    const box = $("findings");
    const variants = Object.keys((f && f.variants) || {});
    if (!variants.length) return;
    const measures = [...new Set(variants.flatMap((v) => Object.keys(f.variants[v])))].filter(
      (m) => variants.some((v) => f.variants[v][m] && f.variants[v][m].n > 0),
    );
    const cell = (s) => {
      if (!s || !s.n) return bn.el("td", { className: "num muted" }, "–");
      const spread = s.n > 1 ? ` ± ${bn.number(s.std)} (n=${s.n})` : "";
      return bn.el("td", { className: "num" }, bn.number(s.mean) + spread);
    };
    const table = bn.el(
      "table",
      { id: "findings-table" },
      bn.el("thead", {}, bn.el("tr", {}, bn.el("th", {}, "measure"), variants.map((v) => bn.el("th", {}, v)))),
      bn.el(
        "tbody",
        {},
        measures.map((m) => bn.el("tr", {}, bn.el("td", {}, m), variants.map((v) => cell(f.variants[v][m])))),
      ),
    );
    const pairs = (f.pairs || []).map((p) =>
      bn.el("div", {}, bn.el("h3", {}, `${p.b} against ${p.a}`), bn.el("ul", {}, p.statements.map((s) => bn.el("li", {}, s)))),
    );
    box.replaceChildren(table, ...pairs);
  }

  async function refresh(force) {
    const reply = await bn.api(base);
    if (!reply.ok) {
      bn.showError($("error"), `could not load the experiment (${reply.status})`);
      return reply.status !== 404;
    }
    const e = reply.body;
    const live = bn.running(e);
    drawSummary(e);
    const changed = force || !last || last.status !== e.status || last.progress !== e.progress;
    if (changed) {
      round += 1;
      drawRuns(e);
      const [index, findings] = await Promise.all([bn.api(`${base}/plots`), bn.api(`${base}/findings`)]);
      if (index.ok) {
        drawIndex(index.body);
        drawPlots(index.body, live);
      }
      if (findings.ok) drawFindings(findings.body);
    }
    last = e;
    return live;
  }

  $("cancel").addEventListener("click", async () => {
    const reply = await bn.api(`${base}/cancel`, { method: "POST" });
    if (!reply.ok) bn.showError($("error"), (reply.body && reply.body.detail) || `error ${reply.status}`);
    refresh(true);
  });
  for (const select of Object.values(controls)) {
    select.addEventListener("change", () => refresh(true));
  }
  bn.poll(() => refresh(false), 1000);
})();
