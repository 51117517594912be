// The medner page: send the text to POST /v1/extract, show the entities inline, in a table
// and as a JSON download. User text only ever goes into textContent (never innerHTML).
"use strict";

const PALETTE = ["#ffd166", "#8fd3fe", "#b5e48c", "#f4a4c0", "#cdb4f6",
                 "#ffb385", "#9ee6d5", "#e9c46a", "#a8c5ff", "#d4d4aa"];
const EXAMPLE = "she was suffering from malaria and fever after chloroquine, " +
                "with pain in the chest and a cough.";

const state = { labels: [], colours: new Map(), maxChars: null, authRequired: false, last: null };
const $ = (id) => document.getElementById(id);

function colourOf(label) {
  if (!state.colours.has(label)) {
    state.colours.set(label, PALETTE[state.colours.size % PALETTE.length]);
  }
  return state.colours.get(label);
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function setStatus(message, isError) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", Boolean(isError));
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return "the server answered " + response.status + " " + response.statusText;
}

async function loadModelInfo() {
  try {
    const health = await (await fetch("/healthz")).json();
    state.authRequired = Boolean(health.auth_required);
    $("key-row").hidden = !state.authRequired;
  } catch (_) { /* the page still works; errors show on Extract */ }
  let response;
  try {
    response = await fetch("/v1/model", { headers: headers() });
  } catch (err) {
    $("model-info").textContent = "Server unreachable (" + err.message + ").";
    return;
  }
  if (!response.ok) {
    $("model-info").textContent = state.authRequired
      ? "Enter the API key to see the model and extract."
      : "Model information unavailable: " + (await errorMessage(response));
    return;
  }
  const info = await response.json();
  state.labels = info.labels || [];
  state.labels.forEach(colourOf);
  state.maxChars = info.limits ? info.limits.max_chars : null;
  const parts = [];
  if (info.name) parts.push(info.name);
  if (info.backend) parts.push(info.backend);
  if (info.base_model && info.base_model.name) parts.push("from " + info.base_model.name);
  if (state.labels.length) parts.push("labels: " + state.labels.join(", "));
  const micro = info.metrics && info.metrics.micro;
  if (micro && typeof micro.f1 === "number") parts.push("dev F1 " + (100 * micro.f1).toFixed(1));
  $("model-info").textContent = parts.join(" · ");
  updateCount();
}

function updateCount() {
  const n = $("text").value.length;
  $("char-count").textContent = state.maxChars
    ? n.toLocaleString() + " / " + state.maxChars.toLocaleString() + " characters"
    : n.toLocaleString() + " characters";
}

function renderLegend(spans) {
  const legend = $("legend");
  legend.replaceChildren();
  const counts = new Map();
  spans.forEach((s) => counts.set(s.label, (counts.get(s.label) || 0) + 1));
  const labels = [...state.labels];
  counts.forEach((_, label) => { if (!labels.includes(label)) labels.push(label); });
  for (const label of labels) {
    const item = document.createElement("li");
    item.dataset.label = label;
    item.style.background = colourOf(label);
    item.textContent = label + " (" + (counts.get(label) || 0) + ")";
    legend.append(item);
  }
  // Negated and uncertain findings look different in the text; the legend says how.
  for (const [status, how] of ASSERTION_STYLES) {
    const n = spans.filter((s) => assertionOf(s) === status).length;
    if (!n) continue;
    const item = document.createElement("li");
    item.className = "assertion " + status;
    item.dataset.assertion = status;
    item.textContent = status + " (" + n + "): " + how;
    legend.append(item);
  }
}

const ASSERTION_STYLES = [
  ["absent", "negated in the text, struck through"],
  ["possible", "uncertain in the text, dashed outline"],
];

function assertionOf(span) {
  return span.attributes && span.attributes.assertion ? span.attributes.assertion : null;
}

function renderHighlighted(text, spans, concepts) {
  const box = $("highlighted");
  box.replaceChildren();
  let pos = 0;
  const sorted = [...spans].sort((a, b) => a.start - b.start || b.end - a.end);
  for (const span of sorted) {
    if (span.start < pos) continue; // overlapping span: listed in the table only
    box.append(document.createTextNode(text.slice(pos, span.start)));
    const mark = document.createElement("mark");
    mark.className = "entity";
    mark.dataset.label = span.label;
    mark.dataset.start = span.start;
    mark.dataset.end = span.end;
    mark.style.background = colourOf(span.label);
    const status = assertionOf(span);
    if (status) {
      mark.dataset.assertion = status;
      mark.classList.add(status);
    }
    mark.title = span.label + (status && status !== "present" ? ", " + status : "") +
      (span.score == null ? "" : " (" + span.score.toFixed(3) + ")") +
      (span.ids && span.ids.length ? ": " + span.ids.map((id) => conceptText(id, concepts)).join(", ") : "");
    mark.append(document.createTextNode(text.slice(span.start, span.end)));
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = span.label + (status && status !== "present" ? " \u00b7 " + status : "");
    tag.setAttribute("aria-hidden", "true");
    mark.append(tag);
    box.append(mark);
    pos = span.end;
  }
  box.append(document.createTextNode(text.slice(pos)));
}

function conceptText(id, concepts) {
  return concepts && concepts[id] ? id + " " + concepts[id] : id;
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function renderTable(spans, concepts) {
  const body = $("entities").querySelector("tbody");
  body.replaceChildren();
  spans.forEach((span, i) => {
    const row = document.createElement("tr");
    cell(row, String(i + 1), "num");
    cell(row, span.text);
    const label = cell(row, "");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colourOf(span.label);
    label.append(swatch, document.createTextNode(span.label));
    cell(row, String(span.start), "num");
    cell(row, String(span.end), "num");
    cell(row, span.score == null ? "" : span.score.toFixed(3), "num");
    cell(row, assertionOf(span) || "", "status");
    cell(row, (span.ids || []).map((id) => conceptText(id, concepts)).join(", "), "concept");
    body.append(row);
  });
  $("entities").hidden = spans.length === 0;
  $("empty").hidden = spans.length !== 0;
}

function renderRelations(relations, concepts) {
  const list = $("relations");
  list.replaceChildren();
  for (const r of relations) {
    const item = document.createElement("li");
    item.textContent = r.label + ": " + conceptText(r.head, concepts) + " \u2192 " +
      conceptText(r.tail, concepts);
    list.append(item);
  }
  $("relations-box").hidden = relations.length === 0;
}

async function extract() {
  const text = $("text").value;
  if (!text.trim()) {
    setStatus("Paste some text first.", true);
    return;
  }
  const button = $("extract");
  button.disabled = true;
  setStatus("Extracting…", false);
  try {
    const response = await fetch("/v1/extract", {
      method: "POST", headers: headers(), body: JSON.stringify({ texts: [text] }),
    });
    if (!response.ok) {
      if (response.status === 401) $("key-row").hidden = false;
      setStatus("Error: " + (await errorMessage(response)), true);
      return;
    }
    const result = await response.json();
    const doc = result.documents[0];
    state.last = doc;
    renderLegend(doc.spans);
    renderHighlighted(doc.text, doc.spans, doc.concepts);
    renderTable(doc.spans, doc.concepts);
    renderRelations(doc.relations, doc.concepts);
    $("results").hidden = false;
    const n = doc.spans.length;
    setStatus(n + (n === 1 ? " entity" : " entities") + " found.", false);
    if (!state.labels.length) loadModelInfo();
  } catch (err) {
    setStatus("Error: could not reach the server (" + err.message + ").", true);
  } finally {
    button.disabled = false;
  }
}

function download() {
  if (!state.last) return;
  const blob = new Blob([JSON.stringify(state.last, null, 2) + "\n"],
                        { type: "application/json" });
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = "medner-entities.json";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  $("extract").addEventListener("click", extract);
  $("download").addEventListener("click", download);
  $("example").addEventListener("click", () => { $("text").value = EXAMPLE; updateCount(); });
  $("text").addEventListener("input", updateCount);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) extract();
  });
  $("api-key").addEventListener("change", loadModelInfo);
  updateCount();
  loadModelInfo();
});
