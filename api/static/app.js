// Helpers every dashboard page uses. Plain ES2020, no build step, no third-party code.
"use strict";

const bn = {
  // A JSON request to the API: {ok, status, body}. A 401 sends the browser to log in.
  async api(path, options = {}) {
    const init = { ...options, headers: { Accept: "application/json", ...(options.headers || {}) } };
    if (init.body !== undefined && typeof init.body !== "string") {
      init.body = JSON.stringify(init.body);
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    return { ok: response.ok, status: response.status, body };
  },

  // document.createElement with attributes and children (strings become text, never HTML).
  el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key in node && key !== "list") node[key] = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  },

  duration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return "";
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
  },

  // Time left, assuming the rest goes at the pace so far: elapsed * (1 - p) / p.
  timeLeft(experiment) {
    const p = experiment.progress;
    if (experiment.status !== "running" || !experiment.started_at || !(p > 0)) return "";
    if (p >= 1) return "finishing";
    const elapsed = (Date.now() - Date.parse(experiment.started_at)) / 1000;
    return bn.duration((elapsed * (1 - p)) / p) + " left";
  },

  number(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    return Math.abs(value) >= 1000 || Number.isInteger(value) ? String(value) : value.toPrecision(4);
  },

  when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  },

  running(experiment) {
    return experiment.status === "queued" || experiment.status === "running";
  },

  // Load `url` off-screen and swap it in when it has arrived: a live plot never flickers blank.
  swapImage(img, url) {
    if (img.dataset.want === url) return;
    img.dataset.want = url;
    const next = new Image();
    next.onload = () => {
      if (img.dataset.want !== url) return;
      img.src = url;
      img.classList.remove("failed");
      if (img.nextElementSibling && img.nextElementSibling.classList.contains("plot-error")) {
        img.nextElementSibling.remove();
      }
    };
    next.onerror = async () => {
      if (img.dataset.want !== url) return;
      img.classList.add("failed");
      const why = await bn.api(url.replace(/\.(png|svg|gif)\?/, ".json?").replace(/\.(png|svg|gif)$/, ".json"));
      const detail = why.body && why.body.detail;
      const text = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : String(detail || why.status);
      const old = img.parentNode.querySelector(".plot-error");
      if (old) old.remove();
      img.after(bn.el("p", { className: "plot-error error" }, text));
    };
    next.src = url;
  },

  showError(node, text) {
    node.textContent = text || "";
    node.hidden = !text;
  },

  // Call fn now and then every `ms` until it returns false; pauses while the tab is hidden.
  poll(fn, ms) {
    let timer = null;
    const tick = async () => {
      let again = true;
      try {
        again = (await fn()) !== false;
      } catch (error) {
        console.error(error);
      }
      if (again) timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
    };
    tick();
    return () => clearTimeout(timer);
  },
};

// With tokens on, the header offers to log out: the cookie goes, and so does the browser, to /login.
(async () => {
  const button = document.getElementById("logout");
  if (!button) return;
  const reply = await fetch("/session", { headers: { Accept: "application/json" } });
  if (!reply.ok) return;
  const who = await reply.json();
  if (!who.auth) return;
  button.textContent = `Log out ${who.owner}`;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await fetch("/session", { method: "DELETE" });
    location.href = "/login";
  });
})();
