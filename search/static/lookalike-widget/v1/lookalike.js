/*! Lookalike storefront widget: visual search from one script tag. Markup and options: docs/widget.md */
(function () {
  "use strict";
  // Included twice (a theme and an app both add the tag): the first copy owns the page.
  if (window.Lookalike && window.Lookalike.init) return;

  const VERSION = "1.0.0";
  const SELECTOR = "[data-lookalike-search],[data-lookalike-similar]";
  // Phone photos are 3-50 MP and the model looks at 224 px: sending at most this many pixels a side
  // keeps every search (and every re-search with a crop) a small upload, while a quarter-width crop
  // still has 400 px, more than the model uses.
  const MAX_SIDE = 1600;
  const CROP_STEP = 0.05; // arrow keys move or resize the crop box by 5% of the photo
  const MIN_CROP_PX = 8; // a click without a drag is not a crop
  const MAX_WORDS = 200; // the API's limit on q, in characters

  // Every selector starts with [data-lookalike-root], the attribute on the element the widget creates
  // inside each block, and wraps the rest in :where() so a shop's own class rule wins over ours.
  // tests/search/test_widget_static.py parses this constant: keep it one template literal, no ${}.
  const CSS = `
[data-lookalike-root]{display:block;color:inherit;font:inherit;outline:none}
[data-lookalike-root] *{box-sizing:border-box}
[data-lookalike-root][hidden],[data-lookalike-root] [hidden]{display:none!important}
[data-lookalike-root] :where(.lkw-drop){display:flex;flex-wrap:wrap;align-items:center;gap:.5em 1em;padding:1em;border:2px dashed var(--lookalike-border,#cbd5e1);border-radius:var(--lookalike-radius,10px);background:var(--lookalike-surface,transparent)}
[data-lookalike-root] :where(.lkw-drop.lkw-over){border-color:var(--lookalike-accent,#2563eb)}
[data-lookalike-root] :where(.lkw-btn,.lkw-clear){position:relative;display:inline-flex;align-items:center;margin:0;padding:.5em 1em;border:1px solid var(--lookalike-accent,#2563eb);border-radius:999px;background:var(--lookalike-accent,#2563eb);color:var(--lookalike-on-accent,#fff);font:inherit;font-weight:600;line-height:1.2;cursor:pointer}
[data-lookalike-root] :where(.lkw-clear){background:transparent;color:var(--lookalike-accent,#2563eb);font-weight:400}
[data-lookalike-root] :where(.lkw-btn:focus-within,:focus-visible){outline:2px solid var(--lookalike-accent,#2563eb);outline-offset:2px}
[data-lookalike-root] :where(.lkw-file){position:absolute;width:1px;height:1px;margin:0;padding:0;border:0;overflow:hidden;clip-path:inset(50%);opacity:0}
[data-lookalike-root] :where(.lkw-words){display:flex;gap:.5em;width:100%;margin:0}
[data-lookalike-root] :where(.lkw-q){flex:1 1 12em;min-width:0;padding:.5em .75em;border:1px solid var(--lookalike-border,#cbd5e1);border-radius:999px;background:var(--lookalike-surface,#fff);color:inherit;font:inherit}
[data-lookalike-root] :where(.lkw-hint,.lkw-status,.lkw-note){color:var(--lookalike-muted,#6b7280);font-size:.875em}
[data-lookalike-root] :where(.lkw-work){display:flex;flex-wrap:wrap;align-items:flex-end;gap:.5em 1em;margin-top:.75em}
[data-lookalike-root] :where(.lkw-stage){position:relative;display:inline-block;max-width:100%;overflow:hidden;cursor:crosshair;touch-action:none;user-select:none;-webkit-user-select:none}
[data-lookalike-root] :where(.lkw-stage img){display:block;max-width:100%;max-height:var(--lookalike-preview-height,320px);width:auto;height:auto}
[data-lookalike-root] :where(.lkw-box){position:absolute;border:2px solid var(--lookalike-accent,#2563eb);box-shadow:0 0 0 100vmax rgba(0,0,0,.35);pointer-events:none}
[data-lookalike-root] :where(.lkw-status){min-height:1.3em;margin:.5em 0}
[data-lookalike-root] :where(.lkw-status:empty){min-height:0;margin:0}
[data-lookalike-root] :where(.lkw-error){color:var(--lookalike-error,#b91c1c)}
[data-lookalike-root] :where(.lkw-heading){margin:.5em 0;font-size:1em;font-weight:600}
[data-lookalike-root] :where(.lkw-list){display:grid;grid-template-columns:repeat(auto-fill,minmax(var(--lookalike-card-width,150px),1fr));gap:var(--lookalike-gap,1em);margin:0;padding:0;list-style:none}
[data-lookalike-root] :where(.lkw-item){margin:0;padding:0}
[data-lookalike-root] :where(.lkw-card){display:flex;flex-direction:column;gap:.25em;height:100%;padding:.5em;border:1px solid var(--lookalike-border,#e5e7eb);border-radius:var(--lookalike-radius,10px);background:var(--lookalike-surface,transparent);color:inherit;text-decoration:none}
[data-lookalike-root] :where(a.lkw-card:hover,[data-match=same] .lkw-card){border-color:var(--lookalike-accent,#2563eb)}
[data-lookalike-root] :where(.lkw-card img,.lkw-ph){display:block;width:100%;height:auto;aspect-ratio:1;object-fit:contain;background:#fff;border-radius:calc(var(--lookalike-radius,10px) / 2)}
[data-lookalike-root] :where(.lkw-ph){background:#f3f4f6}
[data-lookalike-root] :where(.lkw-title){font-weight:600;line-height:1.3}
[data-lookalike-root] :where(.lkw-price){font-variant-numeric:tabular-nums}
[data-lookalike-root] :where(.lkw-same){color:var(--lookalike-accent,#2563eb);font-size:.75em}
`;

  const script = document.currentScript || document.querySelector("script[data-key][src*='lookalike']");
  const conf = (script && script.dataset) || {};
  const KEY = conf.key || "";
  let API = "";
  try {
    // The API is where the script came from, unless data-api names another base URL.
    API = conf.api ? new URL(conf.api, location.href).href.replace(/\/+$/, "") : new URL(script.src).origin;
  } catch (err) {
    API = "";
  }

  const warned = new Set();
  function warn(message) {
    // One line per distinct problem: ten blocks failing against a down API must not flood the console.
    if (warned.has(message)) return;
    warned.add(message);
    console.warn("Lookalike: " + message);
  }
  if (!KEY) warn("the script tag has no data-key; searches will be refused");
  if (!API) warn("the API's address is unknown (no script src, or a bad data-api); searches go to this page's origin");

  // Builds nodes; strings become text nodes, so shop data can never turn into markup.
  function h(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const name in attrs) {
      const value = attrs[name];
      if (value === true) node.setAttribute(name, "");
      else if (value != null && value !== false) node.setAttribute(name, value);
    }
    node.append(...kids.filter((kid) => kid != null && kid !== false));
    return node;
  }

  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      const url = new URL(value, location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (err) {
      return null;
    }
  }

  const formats = {};
  function money(price, currency) {
    if (typeof price !== "number" || !isFinite(price)) return null;
    try {
      formats[currency] =
        formats[currency] || new Intl.NumberFormat(undefined, { style: "currency", currency: currency });
      return formats[currency].format(price);
    } catch (err) {
      return price.toFixed(2) + (currency ? " " + currency : ""); // not an ISO 4217 code
    }
  }

  function limitOf(host, fallback) {
    const n = parseInt(host.getAttribute("data-limit"), 10);
    return n > 0 ? Math.min(n, 100) : fallback;
  }

  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

  function headers(json) {
    const out = { Accept: "application/json" };
    if (KEY) out.Authorization = "Bearer " + KEY;
    if (json) out["Content-Type"] = "application/json";
    return out;
  }

  function reportClick(searchId, productId, position) {
    // keepalive lets the request outlive the page the click is leaving; nothing waits for it.
    fetch(API + "/api/v1/events/", {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      keepalive: true,
      headers: headers(true),
      body: JSON.stringify({ search_id: searchId, product_id: productId, position: position, type: "click" }),
    }).catch((err) => warn("a click could not be reported: " + err.message));
  }

  // One block: the shop's element (host), the root the widget owns, a status line and the results.
  function makeBlock(host, mode) {
    const block = {
      host,
      seq: 0,
      abort: null,
      status: h("p", { class: "lkw-status", role: "status", "aria-live": "polite" }),
      results: h("div", { "data-lookalike-results": true }),
      mode,
    };
    block.root = h("div", { "data-lookalike-root": true, "data-mode": mode });
    host.append(block.root);
    return block;
  }

  function setState(block, state, text, isError) {
    block.host.setAttribute("data-lookalike-state", state);
    block.status.textContent = text || "";
    block.status.classList.toggle("lkw-error", !!isError);
  }

  function fail(block, shown, logged) {
    block.results.textContent = "";
    block.root.hidden = false;
    setState(block, "error", shown, true);
    warn(logged);
  }

  async function search(block, body, json) {
    if (block.abort) block.abort.abort();
    const abort = (block.abort = typeof AbortController === "function" ? new AbortController() : null);
    const seq = ++block.seq;
    setState(block, "loading", "Searching…");
    let res;
    let out = null;
    try {
      res = await fetch(API + "/api/v1/search/", {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: headers(json),
        body: body,
        signal: abort ? abort.signal : undefined,
      });
      out = await res.json().catch(() => null);
    } catch (err) {
      if (seq === block.seq) fail(block, "Visual search is unavailable right now.", `${API} could not be reached (${err.message})`);
      return false;
    }
    if (seq !== block.seq) return false; // a newer search replaced this one
    if (!res.ok || !out || !Array.isArray(out.results)) {
      const message = (out && out.error && out.error.message) || `Search failed (HTTP ${res.status}).`;
      fail(block, String(message).slice(0, 200), `search answered HTTP ${res.status}: ${message}`);
      return false;
    }
    render(block, out);
    return true;
  }

  function card(hit, index, searchId, verdict) {
    hit = hit || {};
    const product = hit.product || {};
    const title = String(product.title || product.sku || "");
    const href = safeUrl(product.link) || safeUrl(product.url);
    const src = safeUrl(product.image_url);
    const same = verdict && hit.match === "same";
    const price = money(product.price, product.currency);
    // Width and height reserve the square the stylesheet draws, so late images do not shift the page.
    const picture = src
      ? h("img", { src: src, alt: title, loading: "lazy", decoding: "async", width: "300", height: "300" })
      : h("span", { class: "lkw-ph", role: "img", "aria-label": title });
    const body = [
      picture,
      h("span", { class: "lkw-title" }, title),
      price && h("span", { class: "lkw-price" }, price),
      product.in_stock === false && h("span", { class: "lkw-note" }, "Out of stock"),
      same && h("span", { class: "lkw-same" }, "Same item"),
    ];
    const link = href ? h("a", { class: "lkw-card", href: href }, ...body) : h("span", { class: "lkw-card" }, ...body);
    if (href) {
      const report = (event) => {
        // auxclick is the middle button (open in a new tab); other buttons open menus, not pages.
        if (event.type === "auxclick" && event.button !== 1) return;
        reportClick(searchId, product.id, index + 1);
      };
      link.addEventListener("click", report);
      link.addEventListener("auxclick", report);
    }
    return h("li", { class: "lkw-item", "data-match": same ? "same" : "similar" }, link);
  }

  function render(block, out) {
    const hits = out.results;
    block.results.textContent = "";
    if (!hits.length) {
      if (block.emptyHides) {
        block.root.hidden = true; // a product page shows nothing rather than an empty "Looks similar"
        setState(block, "empty", "");
      } else setState(block, "empty", "No similar products found.");
      return;
    }
    // Only a photo search gets a match verdict: a "looks similar" block asks for similar products, so it
    // never says "no exact match" (nor "Same item"), whatever an older API answers.
    const verdict = block.mode !== "similar";
    if (verdict && out.no_match) block.results.append(h("h3", { class: "lkw-heading" }, "No exact match; similar items"));
    block.results.append(
      h("ul", { class: "lkw-list", role: "list" }, ...hits.map((hit, i) => card(hit, i, out.search_id, verdict)))
    );
    block.root.hidden = false;
    setState(block, "ready", block.emptyHides ? "" : hits.length === 1 ? "1 product found." : `${hits.length} products found.`);
  }

  // Photos wider or taller than MAX_SIDE are redrawn smaller (as JPEG on white, as the server letterboxes).
  // Browsers draw and measure images upright (EXIF applied), and the server crops after applying EXIF,
  // so a crop measured on the preview means the same pixels in the original and in the copy.
  function shrink(img, file) {
    const w = img.naturalWidth;
    const ht = img.naturalHeight;
    const scale = MAX_SIDE / Math.max(w, ht);
    const original = { blob: file, w: w, h: ht };
    if (!(scale < 1)) return Promise.resolve(original);
    return new Promise((resolve) => {
      try {
        const canvas = h("canvas", { width: Math.round(w * scale), height: Math.round(ht * scale) });
        const g = canvas.getContext("2d");
        g.fillStyle = "#fff";
        g.fillRect(0, 0, canvas.width, canvas.height);
        g.drawImage(img, 0, 0, canvas.width, canvas.height);
        canvas.toBlob(
          (blob) => resolve(blob ? { blob: blob, w: canvas.width, h: canvas.height } : original),
          "image/jpeg",
          0.9
        );
      } catch (err) {
        resolve(original);
      }
    });
  }

  const searchBlocks = new Set();

  function searchBlock(host) {
    const block = makeBlock(host, "search");
    block.root.tabIndex = -1; // a click anywhere in the block focuses it, so Ctrl+V pastes here
    const input = h("input", { type: "file", accept: "image/*", class: "lkw-file" });
    // Words: typed alone they search the catalog's text; with a photo chosen they re-rank its answer.
    const q = h("input", {
      type: "search",
      class: "lkw-q",
      name: "q",
      maxlength: String(MAX_WORDS),
      autocomplete: "off",
      placeholder: "Search by words",
      "aria-label": "Search products by words",
    });
    const words = h(
      "form",
      { class: "lkw-words", role: "search", hidden: host.getAttribute("data-text") === "false" },
      q,
      h("button", { type: "submit", class: "lkw-btn" }, "Search")
    );
    const drop = h(
      "div",
      { class: "lkw-drop" },
      words,
      h("label", { class: "lkw-btn" }, "Search by photo", input),
      h("span", { class: "lkw-hint" }, "or drop or paste a photo here")
    );
    const img = h("img", { alt: "Your photo", draggable: "false" });
    const box = h("div", { class: "lkw-box", hidden: true });
    const stage = h(
      "div",
      {
        class: "lkw-stage",
        tabindex: "0",
        role: "group",
        "aria-label": "Your photo. Drag on it, or use the arrow keys, to search one part; Shift+arrows resize; Escape clears.",
      },
      img,
      box
    );
    const clear = h("button", { type: "button", class: "lkw-clear", hidden: true }, "Search whole photo");
    const work = h(
      "div",
      { class: "lkw-work", hidden: true },
      stage,
      h("span", { class: "lkw-hint" }, "Drag on the photo to search one part of it."),
      clear
    );
    block.root.append(drop, work, block.status, block.results);

    let photo = null; // {blob, w, h}: what is sent; w and h are its pixels
    let crop = null; // {x, y, w, h} as fractions of the photo, so layout changes cannot skew it
    let picks = 0;
    let sent = null;
    let timer = 0;

    const cropPixels = () =>
      crop && [
        Math.round(crop.x * photo.w),
        Math.round(crop.y * photo.h),
        Math.max(1, Math.round(crop.w * photo.w)),
        Math.max(1, Math.round(crop.h * photo.h)),
      ].join(",");

    const typed = () => (words.hidden ? "" : q.value.trim().slice(0, MAX_WORDS));
    const categories = () =>
      (host.getAttribute("data-category") || "")
        .split(",")
        .map((c) => c.trim())
        .filter(Boolean);
    const inStock = host.getAttribute("data-in-stock") === "true";

    async function run() {
      clearTimeout(timer);
      const text = typed();
      if (!photo && !text) return;
      const key = cropPixels() || "";
      // nothing changed (a click, not a drag; Enter on the same words)
      if (sent && sent.photo === photo && sent.key === key && sent.text === text) return;
      const mine = (sent = { photo: photo, key: key, text: text });
      let ok;
      if (photo) {
        const form = new FormData();
        form.append("image", photo.blob, photo.blob.name || "photo.jpg");
        if (key) form.append("crop", key);
        if (text) form.append("q", text);
        form.append("limit", String(limitOf(host, 12)));
        for (const c of categories()) form.append("category", c);
        if (inStock) form.append("in_stock", "true");
        ok = await search(block, form, false);
      } else {
        const body = { q: text, limit: limitOf(host, 12) };
        if (categories().length) body.category = categories();
        if (inStock) body.in_stock = true;
        ok = await search(block, JSON.stringify(body), true);
      }
      // A failed search may be retried as it was; a superseded one has already been replaced in `sent`.
      if (!ok && sent === mine) sent = null;
    }

    words.addEventListener("submit", (e) => {
      e.preventDefault();
      run();
    });
    // Clearing the words (the field's own x, or deleting them) searches the photo alone again.
    q.addEventListener("search", () => {
      if (!q.value && photo) run();
    });

    function setCrop(next) {
      crop = next;
      box.hidden = clear.hidden = !next;
      if (next) {
        Object.assign(box.style, {
          left: next.x * 100 + "%",
          top: next.y * 100 + "%",
          width: next.w * 100 + "%",
          height: next.h * 100 + "%",
        });
      }
    }

    function useFile(file) {
      if (!file || !/^image\//.test(file.type || "")) {
        setState(block, "error", "That is not an image file.", true);
        return;
      }
      const pick = ++picks;
      if (img.src) URL.revokeObjectURL(img.src);
      img.onload = async () => {
        const next = await shrink(img, file);
        if (pick !== picks) return; // another photo was chosen meanwhile
        photo = next;
        setCrop(null);
        run();
      };
      img.onerror = () => setState(block, "error", "That image could not be opened.", true);
      work.hidden = false;
      img.src = URL.createObjectURL(file);
    }
    block.useFile = useFile;

    input.addEventListener("change", () => {
      useFile(input.files && input.files[0]);
      input.value = ""; // choosing the same file again should search again
    });

    const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
    for (const type of ["dragenter", "dragover"]) {
      block.root.addEventListener(type, (e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        drop.classList.add("lkw-over");
      });
    }
    block.root.addEventListener("dragleave", (e) => {
      if (!block.root.contains(e.relatedTarget)) drop.classList.remove("lkw-over");
    });
    block.root.addEventListener("drop", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      drop.classList.remove("lkw-over");
      useFile(e.dataTransfer.files[0]);
    });

    // Crop by dragging: positions are fractions of the preview as drawn.
    let start = null;
    const at = (e) => {
      const r = img.getBoundingClientRect();
      return { x: clamp((e.clientX - r.left) / r.width, 0, 1), y: clamp((e.clientY - r.top) / r.height, 0, 1) };
    };
    stage.addEventListener("dragstart", (e) => e.preventDefault());
    stage.addEventListener("pointerdown", (e) => {
      if (!photo || e.button !== 0) return;
      e.preventDefault();
      stage.focus({ preventScroll: true });
      start = at(e);
      stage.setPointerCapture(e.pointerId);
    });
    stage.addEventListener("pointermove", (e) => {
      if (!start) return;
      const p = at(e);
      setCrop({
        x: Math.min(p.x, start.x),
        y: Math.min(p.y, start.y),
        w: Math.abs(p.x - start.x),
        h: Math.abs(p.y - start.y),
      });
    });
    stage.addEventListener("pointerup", () => {
      if (!start) return;
      start = null;
      if (crop && (crop.w * photo.w < MIN_CROP_PX || crop.h * photo.h < MIN_CROP_PX)) setCrop(null);
      run();
    });
    stage.addEventListener("pointercancel", () => {
      start = null;
    });

    const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    stage.addEventListener("keydown", (e) => {
      const d = ARROWS[e.key];
      if (!d || !photo) return;
      e.preventDefault();
      // The first arrow press puts a box on the middle of the photo; later ones move (Shift: resize) it.
      const c = crop ? Object.assign({}, crop) : { x: 0.25, y: 0.25, w: 0.5, h: 0.5 };
      if (crop && e.shiftKey) {
        c.w = clamp(c.w + d[0] * CROP_STEP, CROP_STEP, 1 - c.x);
        c.h = clamp(c.h + d[1] * CROP_STEP, CROP_STEP, 1 - c.y);
      } else if (crop) {
        c.x = clamp(c.x + d[0] * CROP_STEP, 0, 1 - c.w);
        c.y = clamp(c.y + d[1] * CROP_STEP, 0, 1 - c.h);
      }
      setCrop(c);
      clearTimeout(timer);
      timer = setTimeout(run, 400); // one search when the key is let go, not one per step
    });
    block.root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && crop) {
        e.stopPropagation(); // clearing the crop must not also close a shop's quick-view dialog around us
        setCrop(null);
        run();
      }
    });
    clear.addEventListener("click", () => {
      setCrop(null);
      run();
      stage.focus({ preventScroll: true });
    });
    searchBlocks.add(block);
  }

  function similarBlock(host) {
    const block = makeBlock(host, "similar");
    const title = host.getAttribute("data-title");
    block.emptyHides = true;
    block.root.append(
      title !== "" && h("h2", { class: "lkw-heading" }, title || "Looks similar"),
      block.status,
      block.results
    );
    const sku = host.getAttribute("data-sku");
    if (!sku) {
      block.root.hidden = true;
      warn("a data-lookalike-similar block has no data-sku");
      return;
    }
    const run = () => search(block, JSON.stringify({ sku: sku, limit: limitOf(host, 8) }), true);
    if (typeof IntersectionObserver !== "function") return void run();
    // Product pages put this block below the fold: search when it comes near the screen, not on load.
    const seen = new IntersectionObserver(
      (entries) => {
        if (!entries.some((entry) => entry.isIntersecting)) return;
        seen.disconnect();
        run();
      },
      { rootMargin: "300px" }
    );
    seen.observe(host);
  }

  const editable = (el) => el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));

  // Paste goes to the search block that has focus, or to the only search block on the page, but
  // never steals a paste meant for one of the shop's own fields.
  document.addEventListener("paste", (e) => {
    const item = [...((e.clipboardData && e.clipboardData.items) || [])].find(
      (i) => i.kind === "file" && /^image\//.test(i.type)
    );
    if (!item) return;
    for (const block of searchBlocks) if (!block.root.isConnected) searchBlocks.delete(block);
    const focused = document.activeElement;
    const blocks = [...searchBlocks];
    let target = blocks.find((block) => block.root.contains(focused));
    if (!target && blocks.length === 1 && !editable(focused)) target = blocks[0];
    if (!target) return;
    e.preventDefault();
    target.useFile(item.getAsFile());
  });

  const started = new WeakSet();
  function init(scope) {
    const base = scope && scope.querySelectorAll ? scope : document;
    if (!document.querySelector("style[data-lookalike-style]")) {
      const style = h("style", { "data-lookalike-style": true });
      if (script && script.nonce) style.nonce = script.nonce; // a CSP nonce for scripts often covers styles too
      style.textContent = CSS;
      (document.head || document.documentElement).append(style);
    }
    const hosts = [...base.querySelectorAll(SELECTOR)];
    if (base.matches && base.matches(SELECTOR)) hosts.unshift(base);
    let count = 0;
    for (const host of hosts) {
      if (started.has(host)) continue;
      started.add(host);
      count++;
      try {
        if (host.hasAttribute("data-lookalike-similar")) similarBlock(host);
        else searchBlock(host);
      } catch (err) {
        warn("a block could not start: " + err.message);
      }
    }
    return count;
  }

  window.Lookalike = { version: VERSION, init: init };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => init());
  else init();
})();
