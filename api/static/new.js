// Start an experiment: pick a preset, edit its spec as a form (built from the API's JSON Schema)
// or as JSON, both kept in step; the API's validation errors appear next to the fields they name.
"use strict";

(() => {
  const select = document.getElementById("preset");
  const description = document.getElementById("description");
  const textarea = document.getElementById("spec");
  const jsonError = document.getElementById("json-error");
  const builder = document.getElementById("builder");
  const errors = document.getElementById("errors");
  const form = document.getElementById("new-form");
  const button = document.getElementById("submit");
  let presets = {};
  let schema = null;
  let spec = {};

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

  // The form changed the spec: the JSON follows.
  function changed() {
    textarea.value = JSON.stringify(spec, null, 2);
    jsonError.hidden = true;
  }

  function rebuild() {
    if (!schema) return;
    builder.replaceChildren(schemaForm.build(schema, spec, changed, rebuild));
  }

  function load(value) {
    spec = JSON.parse(JSON.stringify(value));
    changed();
    rebuild();
  }

  // The JSON changed: the form follows, once it parses.
  textarea.addEventListener("input", () => {
    let parsed;
    try {
      parsed = JSON.parse(textarea.value);
    } catch (error) {
      bn.showError(jsonError, `not valid JSON yet: ${error.message}`);
      return;
    }
    if (!isObject(parsed)) {
      bn.showError(jsonError, "the spec is a JSON object");
      return;
    }
    jsonError.hidden = true;
    spec = parsed;
    rebuild();
  });

  // A 422's detail entries: the location inside the spec, and the message.
  function located(detail) {
    if (!Array.isArray(detail)) return [{ loc: [], msg: String(detail) }];
    return detail.map((d) => {
      const loc = (d.loc || []).filter((p, i) => !(i === 0 && p === "body"));
      while (loc.length && (loc[0] === "overrides" || loc[0] === "spec")) loc.shift();
      return { loc, msg: d.msg };
    });
  }

  select.addEventListener("change", () => {
    const preset = presets[select.value];
    description.textContent = preset.description;
    show([]);
    load(preset.spec);
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
    const found = located(reply.body ? reply.body.detail : `error ${reply.status}`);
    if (schema) schemaForm.showErrors(builder, schema, found);
    show(found.map(({ loc, msg }) => (loc.length ? `${schemaForm.normalise(schema || {}, loc).join(".")}: ${msg}` : msg)));
  });

  (async () => {
    const [schemaReply, presetReply] = await Promise.all([
      bn.api("/api/v1/spec/schema"),
      bn.api("/api/v1/presets"),
    ]);
    if (schemaReply.ok) schema = schemaReply.body;
    else show([`could not load the spec's schema (${schemaReply.status}): edit the JSON`]);
    if (!presetReply.ok) {
      show([`could not load the presets (${presetReply.status})`]);
      return;
    }
    presets = Object.fromEntries(presetReply.body.map((p) => [p.name, p]));
    select.replaceChildren(...presetReply.body.map((p) => bn.el("option", { value: p.name }, p.name)));
    const wanted = new URLSearchParams(location.search).get("preset");
    if (wanted && presets[wanted]) select.value = wanted;
    select.dispatchEvent(new Event("change"));
  })();
})();
