// The search page: pick, drop or paste a photo, optionally drag a crop box, and see the
// most similar products; or type words (alone, or to re-rank the photo's answer). Plain JavaScript;
// the API does the work.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  // A signed-in editor's session makes the API check CSRF; anonymous shoppers just send it along.
  const csrfToken = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const drop = $("drop"), file = $("file"), stage = $("stage"), preview = $("preview"), box = $("box");
  const statusEl = $("status"), results = $("results"), filters = $("filters"), noMatch = $("no-match");
  let current = null;   // the Blob being searched
  let crop = null;      // {x, y, w, h} in the image's own pixels
  let timer = null;

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("error", !!isError);
  }

  function useFile(blob) {
    if (!blob || !blob.type.startsWith("image/")) { setStatus("That is not an image file.", true); return; }
    current = blob; crop = null; box.hidden = true;
    preview.src = URL.createObjectURL(blob);
    stage.hidden = false; $("drop-hint").hidden = true; $("crop-help").hidden = false;
    preview.onload = () => search();
  }

  file.addEventListener("change", () => useFile(file.files[0]));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => useFile(e.dataTransfer.files[0]));
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData || {}).items || []].find((i) => i.type.startsWith("image/"));
    if (item) useFile(item.getAsFile());
  });

  // Crop: drag a rectangle on the preview; it is sent in the original image's pixels.
  // Chromium otherwise starts a native drag of the <img>: it cancels the pointer stream and drops
  // the picture back on the drop zone, which restarted the search without the crop.
  preview.draggable = false;
  preview.addEventListener("dragstart", (e) => e.preventDefault());
  let start = null;
  stage.addEventListener("pointerdown", (e) => {
    if (!current) return;
    e.preventDefault();
    const r = preview.getBoundingClientRect();
    start = { x: e.clientX - r.left, y: e.clientY - r.top };
    stage.setPointerCapture(e.pointerId);
  });
  stage.addEventListener("pointermove", (e) => {
    if (!start) return;
    const r = preview.getBoundingClientRect();
    const x = Math.max(0, Math.min(e.clientX - r.left, r.width)), y = Math.max(0, Math.min(e.clientY - r.top, r.height));
    Object.assign(box.style, { left: Math.min(x, start.x) + "px", top: Math.min(y, start.y) + "px",
      width: Math.abs(x - start.x) + "px", height: Math.abs(y - start.y) + "px" });
    box.hidden = false;
  });
  stage.addEventListener("pointerup", () => {
    if (!start) return;
    start = null;
    const r = preview.getBoundingClientRect(), sx = preview.naturalWidth / r.width, sy = preview.naturalHeight / r.height;
    const w = box.offsetWidth * sx, h = box.offsetHeight * sy;
    if (w < 8 || h < 8) { crop = null; box.hidden = true; } else {
      crop = { x: Math.round(box.offsetLeft * sx), y: Math.round(box.offsetTop * sy), w: Math.round(w), h: Math.round(h) };
    }
    search();
  });
  stage.addEventListener("pointercancel", () => { start = null; });
  $("clear-crop").addEventListener("click", () => { crop = null; box.hidden = true; search(); });
  filters.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  // Words search as they are typed, once the typing pauses; Enter searches at once.
  const words = $("q");
  words.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 300); });
  filters.addEventListener("submit", (e) => { e.preventDefault(); clearTimeout(timer); search(); });

  async function search() {
    const typed = words.value.trim();
    if (!current && !typed) { setStatus(""); noMatch.hidden = true; results.replaceChildren(); return; }
    const form = new FormData();
    if (current) form.append("image", current, current.name || "photo");
    const f = new FormData(filters);
    for (const [k, v] of f.entries()) { if (k === "q" ? typed !== "" : v !== "") form.append(k, k === "q" ? typed : v); }
    if (crop) form.append("crop", [crop.x, crop.y, crop.w, crop.h].join(","));
    setStatus("Searching…");
    try {
      const res = await fetch("/api/v1/search/", { method: "POST", body: form, headers: { Accept: "application/json", "X-CSRFToken": csrfToken } });
      const body = await res.json();
      if (!res.ok) { setStatus(body.error ? body.error.message : "Search failed.", true); noMatch.hidden = true; results.replaceChildren(); return; }
      render(body);
    } catch (err) {
      setStatus("The server could not be reached.", true);
    }
  }

  // Which model answered: the pretrained backbone until a model trained on this catalog is promoted.
  const MODEL_KINDS = { bootstrap: "pretrained", trained: "trained on your catalog" };

  function render(body) {
    const t = body.timings_ms;
    const kind = MODEL_KINDS[body.model_kind] || body.model_kind || "";
    let stages = current ? `decode ${Math.round(t.decode)}, embed ${Math.round(t.embed)}, search ${Math.round(t.search)}` : `search ${Math.round(t.search)}`;
    if (t.read_text) stages += `, reading the pack ${Math.round(t.read_text)}`;
    // The words read on the photo re-ranked its look-alikes: say so, with what was read.
    const words = body.reranked_by_text && body.words_read ? ` · re-ranked by the words on the pack: ${body.words_read.join(" ")}` : "";
    setStatus(`${body.results.length} products · ${Math.round(t.total)} ms (${stages}) · model v${body.model_version}${kind ? " (" + kind + ")" : ""}${words}`);
    // A calibrated model says when nothing in the catalog is the photographed product.
    noMatch.hidden = body.no_match !== true;
    results.replaceChildren(...body.results.map((hit) => {
      const p = hit.product, a = document.createElement("a");
      a.className = hit.match === "same" ? "card same" : "card"; a.href = p.url; a.dataset.sku = p.sku;
      if (hit.match) a.dataset.match = hit.match;
      const img = document.createElement("img"); img.src = p.image_url; img.alt = ""; img.loading = "lazy";
      const title = document.createElement("span"); title.className = "title"; title.textContent = p.title;
      const meta = document.createElement("span"); meta.className = "meta";
      meta.textContent = `${p.price !== null ? p.price.toFixed(2) + " " + p.currency + " · " : ""}score ${hit.score.toFixed(3)}${p.in_stock ? "" : " · out of stock"}`;
      a.append(img, title, meta);
      return a;
    }));
  }
})();
