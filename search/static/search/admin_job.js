// A job's admin page, live: polls the job's JSON status (staff only) about once a second and updates
// state, progress, summary and log; when the job ends, reloads once so the page shows the outcome
// (for a reindex, the evaluation gate's verdict and the candidate's Recall@K plot).
(function () {
  "use strict";
  const panel = document.getElementById("job-live");
  if (!panel || panel.dataset.finished === "1") return;
  const $ = (id) => document.getElementById(id);
  const url = panel.dataset.statusUrl;

  function show(s) {
    const state = $("job-state");
    state.textContent = s.state_label + (s.cancel_requested && !s.finished ? " (stopping)" : "");
    state.dataset.state = s.state;
    const bar = $("job-progress");
    bar.max = Math.max(1, s.total);
    bar.value = s.done;
    $("job-count").textContent = `${s.done}/${s.total}`;
    if (s.elapsed_s !== null) $("job-elapsed").textContent = `${Math.round(s.elapsed_s)} s`;
    $("job-summary").textContent = s.summary;
    const error = $("job-error");
    error.textContent = s.error;
    error.style.display = s.error ? "" : "none";
    const log = $("job-log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = s.log;
    if (atEnd) log.scrollTop = log.scrollHeight;
    $("job-serving").textContent = s.serving ? `v${s.serving.version} (${s.serving.label})` : "no model yet";
  }

  async function poll() {
    try {
      const res = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (res.ok) {
        const s = await res.json();
        show(s);
        if (s.finished) { window.location.reload(); return; }
      }
    } catch (err) {
      // The server restarting: keep trying; the job survives it.
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 500);
})();
