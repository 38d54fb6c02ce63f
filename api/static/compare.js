// Several experiments' loss and evaluation curves, drawn by the server on one plot each.
"use strict";

(() => {
  const form = document.getElementById("compare-form");
  const input = document.getElementById("ids");
  const smooth = document.getElementById("smooth");
  const plots = document.getElementById("plots");
  const recent = document.getElementById("recent");
  const error = document.getElementById("error");
  const params = new URLSearchParams(location.search);
  input.value = (params.get("ids") || "").split(",").filter(Boolean).join(", ");
  smooth.value = params.get("smooth") || "1";

  const ids = () => input.value.split(/[\s,]+/).filter(Boolean);

  function figure(name, query) {
    const base = `/api/v1/compare/${name}`;
    const img = bn.el("img", { alt: `${name} compared`, className: "plot", "data-plot": name });
    const caption = bn.el(
      "figcaption",
      {},
      bn.el("a", { href: `${base}.svg?${query}` }, "SVG"),
      " · ",
      bn.el("a", { href: `${base}.json?${query}` }, "data"),
    );
    return { node: bn.el("figure", { className: "wide" }, img, caption), img, url: `${base}.png?${query}` };
  }

  let stop = null;
  function show() {
    if (stop) stop();
    const chosen = ids();
    bn.showError(error, chosen.length < 2 ? "give two or more experiment ids" : "");
    if (chosen.length < 1) return plots.replaceChildren();
    const query = new URLSearchParams({ ids: chosen.join(",") });
    if (Number(smooth.value) > 1) query.set("smooth", smooth.value);
    const figures = ["loss", "eval"].map((name) => figure(name, query));
    plots.replaceChildren(...figures.map((f) => f.node));
    let round = 0;
    // Reload while any of them still trains; the server renders each plot at most once a second.
    stop = bn.poll(async () => {
      const states = await Promise.all(chosen.map((id) => bn.api(`/api/v1/experiments/${id}`)));
      const live = states.some((s) => s.ok && bn.running(s.body));
      figures.forEach((f) => bn.swapImage(f.img, live ? `${f.url}&v=${round}` : f.url));
      round += 1;
      return live;
    }, 2000);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const url = new URL(location.href);
    url.searchParams.set("ids", ids().join(","));
    url.searchParams.set("smooth", smooth.value);
    history.replaceState(null, "", url);
    show();
  });

  (async () => {
    const reply = await bn.api("/api/v1/experiments?limit=30");
    if (!reply.ok) return;
    recent.replaceChildren(
      ...reply.body.items.map((e) =>
        bn.el(
          "li",
          {},
          bn.el(
            "label",
            {},
            bn.el("input", {
              type: "checkbox",
              checked: ids().includes(e.id),
              onchange: (event) => {
                const now = ids().filter((id) => id !== e.id);
                if (event.target.checked) now.push(e.id);
                input.value = now.join(", ");
              },
            }),
            ` ${e.name} `,
            bn.el("span", { className: "muted" }, `${e.id.slice(0, 8)} · ${e.status}`),
          ),
        ),
      ),
    );
  })();
  show();
})();
