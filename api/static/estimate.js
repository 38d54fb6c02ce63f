// The "new" page's storage estimate: what the spec in the editor would store, and the quota.
"use strict";

(() => {
  const textarea = document.getElementById("spec");
  const line = document.getElementById("estimate");
  if (!textarea || !line) return;
  const mb = (bytes) => `${(bytes / 1e6).toLocaleString(undefined, { maximumFractionDigits: 1 })} MB`;
  let timer = null;

  async function update() {
    let spec;
    try {
      spec = JSON.parse(textarea.value);
    } catch (_) {
      line.textContent = "";
      return;
    }
    const reply = await bn.api("/api/v1/estimates", { method: "POST", body: { spec } });
    if (!reply.ok) {
      line.textContent = "";
      return;
    }
    const { estimate, used_bytes: used, quota_bytes: quota } = reply.body;
    const rows = `${estimate.rows.toLocaleString()} rows`;
    const of = quota ? `; you use ${mb(used)} of ${mb(quota)}` : "";
    const over = quota && used + estimate.bytes > quota ? " (over your quota)" : "";
    line.textContent = `Will store about ${mb(estimate.bytes)} (${rows})${of}${over}.`;
  }

  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(update, 400);
  };
  textarea.addEventListener("input", soon);
  // The preset select fills the editor from a script: no input event, so watch the value.
  let last = "";
  setInterval(() => {
    if (textarea.value !== last) {
      last = textarea.value;
      soon();
    }
  }, 500);
})();
