// The search page served at `/`: a query box and an image drop zone, results with thumbnails and scores. One
// self-contained HTML document (no external assets: the server may run without network), talking to /v1/search.

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function searchPageHtml(ctx: { modelName: string; hasIndex: boolean; apiKeyRequired: boolean }): string {
  const config = JSON.stringify(ctx).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>moca search · ${escapeHtml(ctx.modelName)}</title>
<style>
  :root { --fg: #1d232a; --muted: #5f6b76; --line: #d9dee3; --accent: #2563eb; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 18px 28px 8px; }
  header h1 { font-size: 20px; margin: 0; }
  header p { margin: 2px 0 0; color: var(--muted); font-size: 13px; }
  form { display: flex; gap: 10px; align-items: stretch; padding: 10px 28px; flex-wrap: wrap; }
  #query { flex: 1 1 360px; padding: 10px 12px; font-size: 16px; border: 1px solid var(--line); border-radius: 8px; }
  #drop { flex: 0 0 220px; border: 2px dashed var(--line); border-radius: 8px; display: flex; align-items: center;
          justify-content: center; gap: 8px; color: var(--muted); font-size: 13px; padding: 4px 8px; cursor: pointer; background: #fff; }
  #drop.over { border-color: var(--accent); color: var(--accent); }
  #drop img { max-height: 40px; max-width: 60px; border-radius: 4px; }
  button { padding: 0 18px; font-size: 15px; border: 0; border-radius: 8px; background: var(--accent); color: #fff; cursor: pointer; }
  button.secondary { background: #e8ebef; color: var(--fg); }
  select, #apikey { padding: 8px; border: 1px solid var(--line); border-radius: 8px; }
  #status { padding: 0 28px; color: var(--muted); min-height: 22px; font-size: 13px; }
  #status.error { color: #b91c1c; }
  #results { list-style: none; margin: 0; padding: 8px 28px 28px; display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 14px; }
  #results li { background: #fff; border: 1px solid var(--line); border-radius: 10px; overflow: hidden; display: flex; flex-direction: column; }
  .thumb { height: 150px; background: #eef1f4; display: flex; align-items: center; justify-content: center; }
  .thumb img { max-width: 100%; max-height: 150px; display: block; }
  .thumb span { color: var(--muted); font-size: 12px; }
  .meta { padding: 8px 10px 10px; }
  .rank { color: var(--muted); font-size: 12px; }
  .id { font-weight: 600; word-break: break-all; }
  .score { font-variant-numeric: tabular-nums; color: var(--accent); font-weight: 600; }
  .text { color: var(--muted); font-size: 13px; margin-top: 4px; display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; overflow: hidden; }
</style>
</head>
<body>
<header>
  <h1>moca search</h1>
  <p id="subtitle">model <b>${escapeHtml(ctx.modelName)}</b></p>
</header>
<form id="search" autocomplete="off">
  <input id="query" name="query" type="search" placeholder="Describe what you are looking for…" aria-label="query">
  <label id="drop" tabindex="0" title="drop an image here or click to choose one">
    <span id="drop-label">Drop an image (or click)</span>
    <input id="file" type="file" accept="image/*" hidden>
  </label>
  <select id="k" aria-label="results"><option>5</option><option selected>10</option><option>20</option><option>50</option></select>
  <input id="apikey" type="password" placeholder="API key" aria-label="API key" hidden>
  <button id="go" type="submit">Search</button>
  <button id="clear" class="secondary" type="button">Clear</button>
</form>
<div id="status" role="status"></div>
<ol id="results"></ol>
<script>
"use strict";
const CONFIG = ${config};
const $ = (id) => document.getElementById(id);
let imageUri = null;

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function setImage(uri, name) {
  imageUri = uri;
  const drop = $("drop");
  drop.querySelectorAll("img").forEach((el) => el.remove());
  if (uri) {
    const img = document.createElement("img");
    img.src = uri;
    img.alt = name || "query image";
    drop.insertBefore(img, $("drop-label"));
    $("drop-label").textContent = name || "image";
  } else {
    $("drop-label").textContent = "Drop an image (or click)";
  }
}

function readFile(file) {
  if (!file || !file.type.startsWith("image/")) { setStatus("That is not an image file.", true); return; }
  const reader = new FileReader();
  reader.onload = () => setImage(String(reader.result), file.name);
  reader.readAsDataURL(file);
}

function render(results) {
  const list = $("results");
  list.replaceChildren();
  for (const r of results) {
    const li = document.createElement("li");
    li.className = "result";
    li.dataset.id = r.id;
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    if (r.thumbnail) {
      const img = document.createElement("img");
      img.src = r.thumbnail;
      img.alt = r.id;
      thumb.append(img);
    } else {
      const span = document.createElement("span");
      span.textContent = "no preview";
      thumb.append(span);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    const head = document.createElement("div");
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = "#" + r.rank + " ";
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = r.score.toFixed(4);
    head.append(rank, score);
    const id = document.createElement("div");
    id.className = "id";
    id.textContent = r.id;
    meta.append(head, id);
    const text = r.metadata && (r.metadata.title || r.metadata.text || r.metadata.path);
    if (text && String(text) !== r.id) {
      const t = document.createElement("div");
      t.className = "text";
      t.textContent = String(text);
      meta.append(t);
    }
    li.append(thumb, meta);
    list.append(li);
  }
}

async function search(event) {
  if (event) event.preventDefault();
  const query = $("query").value.trim();
  if (!query && !imageUri) { setStatus("Type a query or drop an image.", true); return; }
  const body = { k: Number($("k").value), thumbnails: true };
  if (query) body.query = query;
  if (imageUri) body.image = imageUri;
  const headers = { "content-type": "application/json" };
  const key = $("apikey").value;
  if (key) headers.authorization = "Bearer " + key;
  setStatus("Searching…");
  const t0 = performance.now();
  try {
    const res = await fetch("/v1/search", { method: "POST", headers, body: JSON.stringify(body) });
    const json = await res.json();
    if (!res.ok) { setStatus((json.error && json.error.message) || ("HTTP " + res.status), true); return; }
    render(json.data);
    setStatus(json.data.length + " results in " + Math.round(performance.now() - t0) + " ms");
  } catch (e) {
    setStatus("Request failed: " + e.message, true);
  }
}

$("search").addEventListener("submit", search);
$("clear").addEventListener("click", () => { $("query").value = ""; setImage(null); $("results").replaceChildren(); setStatus(""); });
$("drop").addEventListener("click", (e) => { if (e.target.id !== "file") $("file").click(); });
$("file").addEventListener("change", (e) => readFile(e.target.files[0]));
for (const type of ["dragenter", "dragover"]) {
  $("drop").addEventListener(type, (e) => { e.preventDefault(); $("drop").classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  $("drop").addEventListener(type, (e) => { e.preventDefault(); $("drop").classList.remove("over"); });
}
$("drop").addEventListener("drop", (e) => readFile(e.dataTransfer.files[0]));
document.addEventListener("paste", (e) => {
  const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
  if (item) readFile(item.getAsFile());
});

if (CONFIG.apiKeyRequired) $("apikey").hidden = false;
if (!CONFIG.hasIndex) {
  setStatus("No index is loaded: start the server with --index DIR to search.", true);
  $("go").disabled = true;
} else {
  fetch("/health").then((r) => r.json()).then((h) => {
    if (h.index) $("subtitle").append(" · " + h.index.size + " items · " + h.index.quantization);
  }).catch(() => {});
}
</script>
</body>
</html>
`;
}
