// A form built from a JSON Schema (pydantic's, as GET /api/v1/spec/schema serves it).
// One control per field, named by its path (data-path="training.optimizer.lr", the API's error
// locations); arrays of objects are rows that can be added, copied and removed; a discriminated
// union (a variant's model "kind") is a choice that swaps the fields below it. No rules live here:
// ranges and choices come from the schema, and the API's 422s say what is wrong.
"use strict";

const schemaForm = (() => {
  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

  function resolve(root, schema) {
    let s = schema || {};
    while (s.$ref) s = root.$defs[s.$ref.split("/").pop()];
    return s;
  }

  // {schema, nullable}: `X | None` is anyOf [X, {type: null}].
  function unwrap(root, schema) {
    const s = resolve(root, schema);
    if (s.anyOf) {
      const others = s.anyOf.filter((o) => resolve(root, o).type !== "null");
      if (others.length === 1 && others.length < s.anyOf.length) {
        return { schema: { ...resolve(root, others[0]), default: s.default, title: s.title }, nullable: true };
      }
    }
    return { schema: s, nullable: false };
  }

  function pick(root, schema, kind) {
    const ref = schema.discriminator.mapping[kind];
    return ref ? resolve(root, { $ref: ref }) : resolve(root, schema.oneOf[0]);
  }

  // A valid-looking starting value for a field: its default, else something in range.
  function starter(root, schema) {
    const { schema: s, nullable } = unwrap(root, schema);
    if (s.default !== undefined) return clone(s.default);
    if (nullable) return null;
    if (s.oneOf && s.discriminator) return starter(root, resolve(root, s.oneOf[0]));
    if (s.const !== undefined) return s.const;
    if (s.enum) return s.enum[0];
    if (s.type === "object") {
      const out = {};
      for (const key of s.required || []) out[key] = starter(root, s.properties[key]);
      for (const [key, p] of Object.entries(s.properties || {})) {
        if (resolve(root, p).const !== undefined) out[key] = resolve(root, p).const;
      }
      return out;
    }
    if (s.type === "array") {
      return Array.from({ length: s.minItems || 0 }, () => starter(root, s.items));
    }
    if (s.type === "integer" || s.type === "number") {
      const low = s.minimum ?? s.exclusiveMinimum ?? 0;
      return s.type === "integer" ? Math.max(low, Math.min(16, s.maximum ?? 16)) : low;
    }
    if (s.type === "boolean") return false;
    return s.pattern ? "new" : "";
  }

  // Error locations as form paths: pydantic's union tags (a model's "mlp", a dropout's
  // "constrained-float") are not fields; a shape union's tag and what follows it name the field.
  function normalise(root, loc) {
    const out = [];
    let s = root;
    for (const part of loc) {
      const { schema } = unwrap(root, s);
      if (schema.oneOf && schema.discriminator && schema.discriminator.mapping[part]) {
        s = pick(root, schema, part);
        continue;
      }
      if (schema.anyOf) break;
      out.push(part);
      if (schema.type === "object") s = (schema.properties || {})[part] || {};
      else if (schema.type === "array") s = schema.items || {};
      else s = {};
    }
    return out;
  }

  function numberText(value) {
    if (Array.isArray(value)) return value.join(", ");
    return value === null || value === undefined ? "" : String(value);
  }

  // "48, 24" -> [48, 24]; a token that is not a number is kept, for the API to name.
  function parseList(text) {
    const parts = text.split(",").map((t) => t.trim()).filter((t) => t !== "");
    return parts.map((t) => (t !== "" && Number.isFinite(Number(t)) ? Number(t) : t));
  }

  function build(root, value, onChange, onRebuild) {
    const el = bn.el;

    function set(path, v) {
      let node = value;
      path.slice(0, -1).forEach((key, i) => {
        if (node[key] === undefined || node[key] === null) {
          node[key] = typeof path[i + 1] === "number" ? [] : {};
        }
        node = node[key];
      });
      const last = path[path.length - 1];
      if (v === undefined) delete node[last];
      else node[last] = v;
      onChange();
    }

    function get(path) {
      return path.reduce((node, key) => (node === undefined || node === null ? undefined : node[key]), value);
    }

    function input(path, s, nullable, current) {
      const name = path.join(".");
      const listy = s.type === "array" || (s.anyOf && s.anyOf.some((o) => resolve(root, o).type === "array"));
      if (s.enum) {
        const options = s.enum.map((o) => el("option", { value: o, selected: o === current }, String(o)));
        if (nullable) options.unshift(el("option", { value: "", selected: current === null }, "—"));
        return el("select", {
          "data-path": name,
          onchange: (e) => set(path, e.target.value === "" && nullable ? null : e.target.value),
        }, options);
      }
      if (s.type === "boolean") {
        return el("input", {
          type: "checkbox", "data-path": name, checked: Boolean(current),
          onchange: (e) => set(path, e.target.checked),
        });
      }
      if (listy) {
        return el("input", {
          type: "text", "data-path": name, value: numberText(current), size: 12,
          placeholder: "e.g. 48, 24",
          oninput: (e) => {
            const items = parseList(e.target.value);
            const scalar = s.type !== "array" && items.length === 1 && typeof items[0] === "number";
            set(path, scalar ? items[0] : items);
          },
        });
      }
      if (s.type === "integer" || s.type === "number") {
        return el("input", {
          type: "number", "data-path": name, value: numberText(current),
          step: s.type === "integer" ? "1" : "any", min: s.minimum, max: s.maximum,
          placeholder: nullable ? "none" : "", size: 8,
          oninput: (e) => {
            const text = e.target.value.trim();
            if (text === "") set(path, nullable ? null : undefined);
            else set(path, Number.isFinite(Number(text)) ? Number(text) : text);
          },
        });
      }
      return el("input", {
        type: "text", "data-path": name, value: current ?? "", pattern: s.pattern,
        oninput: (e) => set(path, e.target.value),
      });
    }

    function field(path, schema, key) {
      const { schema: s, nullable } = unwrap(root, schema);
      // The title where the field is declared: a $ref's target is titled after its class.
      const named = schema.title || (schema.$ref ? "" : s.title);
      const title = named || String(key).charAt(0).toUpperCase() + String(key).slice(1).replace(/_/g, " ");
      if (s.const !== undefined) return null;
      if ((s.type === "object" || (s.oneOf && s.discriminator)) && !nullable) {
        return el("fieldset", { className: "group", "data-path": path.join(".") },
          el("legend", {}, title), ...fields(path, schema),
          el("span", { className: "field-error error", "data-error": path.join(".") }));
      }
      if (s.type === "array" && isObject(resolve(root, s.items)) && resolve(root, s.items).type === "object") {
        return rows(path, s, title);
      }
      return el("label", { className: "field" }, el("span", {}, title), input(path, s, nullable, get(path)),
        el("span", { className: "field-error error", "data-error": path.join(".") }));
    }

    function fields(path, schema) {
      let s = resolve(root, schema);
      const out = [];
      if (s.oneOf && s.discriminator) {
        const union = s;
        const prop = union.discriminator.propertyName;
        const current = get(path) || {};
        const kinds = Object.keys(union.discriminator.mapping);
        out.push(el("label", { className: "field" }, el("span", {}, "Kind"),
          el("select", {
            "data-path": [...path, prop].join("."),
            onchange: (e) => {
              const next = starter(root, pick(root, union, e.target.value));
              set(path, { ...next, [prop]: e.target.value });
              onRebuild();
            },
          }, kinds.map((k) => el("option", { value: k, selected: k === current[prop] }, k)))));
        s = pick(root, union, current[prop] || kinds[0]);
      }
      for (const [key, p] of Object.entries(s.properties || {})) {
        const node = field([...path, key], p, key);
        if (node) out.push(node);
      }
      return out;
    }

    function rows(path, s, title) {
      const items = get(path) || [];
      const name = path.join(".");
      const noun = title.replace(/s$/, "").toLowerCase();
      const body = items.map((item, i) => el("fieldset", { className: "row", "data-path": `${name}.${i}` },
        el("legend", {}, `${noun} ${i + 1}`,
          el("button", {
            type: "button", className: "small", "data-copy": `${name}.${i}`,
            onclick: () => {
              const copy = clone(item);
              if (typeof copy.name === "string") copy.name = `${copy.name}-copy`;
              items.splice(i + 1, 0, copy);
              onChange();
              onRebuild();
            },
          }, "copy"),
          el("button", {
            type: "button", className: "small", "data-remove": `${name}.${i}`,
            disabled: items.length <= (s.minItems || 0),
            onclick: () => { items.splice(i, 1); onChange(); onRebuild(); },
          }, "remove")),
        ...fields([...path, i], s.items),
        el("span", { className: "field-error error", "data-error": `${name}.${i}` })));
      const add = el("button", {
        type: "button", "data-add": name,
        onclick: () => {
          const next = starter(root, s.items);
          if (typeof next.name === "string") next.name = `${noun}-${items.length + 1}`;
          if (get(path) === undefined) set(path, []);
          get(path).push(next);
          onChange();
          onRebuild();
        },
      }, `add ${noun}`);
      return el("fieldset", { className: "rows", "data-path": name }, el("legend", {}, title), ...body,
        el("span", { className: "field-error error", "data-error": name }), add);
    }

    return el("div", { className: "schema-form" }, ...fields([], root));
  }

  // Put each message next to the deepest field its location names; returns those placed nowhere.
  function showErrors(container, root, errors) {
    for (const node of container.querySelectorAll(".field-error")) node.textContent = "";
    container.querySelectorAll(".invalid").forEach((n) => n.classList.remove("invalid"));
    const unplaced = [];
    for (const { loc, msg } of errors) {
      const path = normalise(root, loc);
      let placed = false;
      for (let n = path.length; n > 0 && !placed; n -= 1) {
        const key = CSS.escape(path.slice(0, n).join("."));
        const slot = container.querySelector(`[data-error="${key}"]`);
        if (slot) {
          slot.textContent = slot.textContent ? `${slot.textContent}; ${msg}` : msg;
          const control = container.querySelector(`[data-path="${key}"]`);
          if (control) control.classList.add("invalid");
          placed = true;
        }
      }
      if (!placed) unplaced.push(msg);
    }
    return unplaced;
  }

  return { build, showErrors, normalise, starter };
})();
