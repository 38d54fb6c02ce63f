// Start an experiment: pick a preset, edit its spec, see the API's validation errors in place.
"use strict";

(() => {
  const select = document.getElementById("preset");
  const description = document.getElementById("description");
  const textarea = document.getElementById("spec");
  const errors = document.getElementById("errors");
  const form = document.getElementById("new-form");
  const button = document.getElementById("submit");
  let presets = {};

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

  // What changed from the preset, as overrides the API deep-merges back into it.
  function diff(base, edited) {
    const out = {};
    for (const [key, value] of Object.entries(edited)) {
      if (isObject(value) && isObject(base[key])) {
        const inner = diff(base[key], value);
        if (Object.keys(inner).length) out[key] = inner;
      } else if (!same(value, base[key])) {
        out[key] = value;
      }
    }
    return out;
  }

  function merge(base, overrides) {
    const out = { ...base };
    for (const [key, value] of Object.entries(overrides)) {
      out[key] = isObject(value) && isObject(base[key]) ? merge(base[key], value) : value;
    }
    return out;
  }

  function show(list) {
    errors.replaceChildren(...list.map((text) => bn.el("li", {}, text)));
    errors.hidden = list.length === 0;
  }

  // A 422's detail entries as "where: what", without the request-body prefix.
  function describe(detail) {
    if (!Array.isArray(detail)) return [String(detail)];
    return detail.map((d) => {
      const loc = (d.loc || []).filter((p, i) => !(i === 0 && p === "body"));
      while (loc.length && (loc[0] === "overrides" || loc[0] === "spec")) loc.shift();
      return loc.length ? `${loc.join(".")}: ${d.msg}` : d.msg;
    });
  }

  select.addEventListener("change", () => {
    const preset = presets[select.value];
    textarea.value = JSON.stringify(preset.spec, null, 2);
    description.textContent = preset.description;
    show([]);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let edited;
    try {
      edited = JSON.parse(textarea.value);
    } catch (error) {
      show([`the spec is not valid JSON: ${error.message}`]);
      return;
    }
    const preset = presets[select.value];
    // Through the preset when possible: it keeps the preset's data-set fallback (mnist ->
    // fashion-mnist offline). A removed key cannot be an override, so then the bare spec goes.
    let body = { spec: edited };
    if (preset && isObject(edited)) {
      const overrides = diff(preset.spec, edited);
      if (same(merge(preset.spec, overrides), edited)) body = { preset: preset.name, overrides };
    }
    button.disabled = true;
    const reply = await bn.api("/api/v1/experiments", { method: "POST", body });
    button.disabled = false;
    if (reply.status === 201) {
      location.href = `/experiments/${reply.body.id}`;
      return;
    }
    show(describe(reply.body ? reply.body.detail : `error ${reply.status}`));
  });

  (async () => {
    const reply = await bn.api("/api/v1/presets");
    if (!reply.ok) {
      show([`could not load the presets (${reply.status})`]);
      return;
    }
    presets = Object.fromEntries(reply.body.map((p) => [p.name, p]));
    select.replaceChildren(...reply.body.map((p) => bn.el("option", { value: p.name }, p.name)));
    const wanted = new URLSearchParams(location.search).get("preset");
    if (wanted && presets[wanted]) select.value = wanted;
    select.dispatchEvent(new Event("change"));
  })();
})();
