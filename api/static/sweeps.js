// The sweeps list, refreshed every two seconds, and the form that starts one from a preset.
"use strict";

(() => {
  const body = document.querySelector("#sweeps tbody");
  const $ = (name) => document.getElementById(name);

  function axes(s) {
    return Object.entries(s.axes)
      .map(([path, values]) => `${path}: ${Array.isArray(values) ? values.join(", ") : JSON.stringify(values)}`)
      .join("; ");
  }

  function row(s) {
    return bn.el(
      "tr",
      { "data-id": s.id },
      bn.el("td", {}, bn.el("a", { href: `/sweeps/${s.id}` }, s.name)),
      bn.el("td", {}, axes(s)),
      bn.el("td", {}, bn.el("span", { className: `status ${s.status}` }, s.status)),
      bn.el("td", { className: "num" }, bn.el("progress", { max: 1, value: s.progress }),
        ` ${Math.round(s.progress * 100)}%`),
      bn.el("td", { className: "num" }, bn.timeLeft(s)),
      bn.el("td", { className: "num" }, String(s.point_count)),
      bn.el("td", {}, bn.when(s.created_at)),
    );
  }

  async function refresh() {
    const reply = await bn.api("/api/v1/sweeps");
    if (!reply.ok) {
      bn.showError($("error"), `could not list sweeps (${reply.status})`);
      return true;
    }
    bn.showError($("error"), "");
    body.replaceChildren(...reply.body.items.map(row));
    $("empty").hidden = reply.body.items.length > 0;
    return true;
  }

  // "0.1, 1e-3, [16, 8], relu" -> [0.1, 0.001, [16, 8], "relu"]: JSON where it parses.
  function parseValues(text) {
    const parts = text.match(/\[[^\]]*\]|[^,]+/g) || [];
    return parts.map((p) => p.trim()).filter(Boolean).map((p) => {
      try {
        return JSON.parse(p);
      } catch (_) {
        return p;
      }
    });
  }

  function showErrors(detail) {
    const list = $("errors");
    const items = Array.isArray(detail) ? detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`) : [String(detail)];
    list.replaceChildren(...items.map((text) => bn.el("li", {}, text)));
    list.hidden = items.length === 0;
  }

  async function submit(event) {
    event.preventDefault();
    let overrides = {};
    const raw = $("overrides").value.trim();
    if (raw) {
      try {
        overrides = JSON.parse(raw);
      } catch (error) {
        showErrors(`overrides: not JSON (${error.message})`);
        return;
      }
    }
    const sweep = {
      base: { preset: $("preset").value, overrides },
      axes: { [$("axis").value.trim()]: parseValues($("values").value) },
    };
    if ($("name").value.trim()) sweep.name = $("name").value.trim();
    const reply = await bn.api("/api/v1/sweeps", { method: "POST", body: sweep });
    if (reply.status === 201) {
      location.href = `/sweeps/${reply.body.id}`;
      return;
    }
    showErrors(reply.body ? reply.body.detail : reply.status);
  }

  async function presets() {
    const reply = await bn.api("/api/v1/presets");
    if (!reply.ok) return;
    $("preset").replaceChildren(...reply.body.map((p) => bn.el("option", { value: p.name, title: p.description }, p.name)));
  }

  $("sweep-form").addEventListener("submit", submit);
  presets();
  bn.poll(refresh, 2000);
})();
