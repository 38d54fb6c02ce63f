// The experiments list: newest first, filterable by status, refreshed every two seconds, a page
// of PAGE at a time ("Show older" adds a page).
"use strict";

(() => {
  const filter = document.getElementById("status-filter");
  const body = document.querySelector("#experiments tbody");
  const empty = document.getElementById("empty");
  const error = document.getElementById("error");
  const compare = document.getElementById("compare-selected");
  const more = document.getElementById("show-older");
  const selected = new Set();
  const PAGE = 100;
  let pages = 1;

  filter.value = new URLSearchParams(location.search).get("status") || "";
  filter.addEventListener("change", () => {
    const url = new URL(location.href);
    if (filter.value) url.searchParams.set("status", filter.value);
    else url.searchParams.delete("status");
    history.replaceState(null, "", url);
    pages = 1;
    refresh();
  });
  more.addEventListener("click", () => {
    pages += 1;
    refresh();
  });
  compare.addEventListener("click", () => {
    location.href = "/compare?ids=" + [...selected].join(",");
  });

  function row(e) {
    const box = bn.el("input", {
      type: "checkbox",
      checked: selected.has(e.id),
      title: "select for comparison",
      onchange: (event) => {
        if (event.target.checked) selected.add(e.id);
        else selected.delete(e.id);
        compare.disabled = selected.size < 2;
      },
    });
    return bn.el(
      "tr",
      { "data-id": e.id },
      bn.el("td", {}, box),
      bn.el("td", {}, bn.el("a", { href: `/experiments/${e.id}` }, e.name)),
      bn.el("td", {}, bn.el("span", { className: `status ${e.status}` }, e.status)),
      bn.el(
        "td",
        { className: "num" },
        bn.el("progress", { max: 1, value: e.progress }),
        ` ${Math.round(e.progress * 100)}%`,
      ),
      bn.el("td", { className: "num" }, bn.timeLeft(e)),
      bn.el("td", {}, bn.when(e.created_at)),
      bn.el("td", { className: "num" }, String(e.runs.length)),
    );
  }

  async function refresh() {
    const items = [];
    let cursor = null;
    for (let page = 0; page < pages; page += 1) {
      const query = new URLSearchParams({ limit: String(PAGE) });
      if (filter.value) query.set("status", filter.value);
      if (cursor) query.set("cursor", cursor);
      const reply = await bn.api(`/api/v1/experiments?${query}`);
      if (!reply.ok) {
        bn.showError(error, `could not list experiments (${reply.status})`);
        return true;
      }
      items.push(...reply.body.items);
      cursor = reply.body.next_cursor;
      if (!cursor) break;
    }
    bn.showError(error, "");
    body.replaceChildren(...items.map(row));
    empty.hidden = items.length > 0;
    more.hidden = !cursor;
    return true;
  }

  bn.poll(refresh, 2000);
})();
