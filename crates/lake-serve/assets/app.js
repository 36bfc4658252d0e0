// The dashboard: gold figures, data quality and the last runs from the
// server's JSON API, live views every second. Text from the data goes in
// with textContent only (country names come from events anyone can
// produce).
//
// When the server needs an API key, the page asks for it once and keeps it
// in this tab's session storage (gone when the tab closes); every API call
// sends it as a bearer token.
"use strict";

const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const percent = new Intl.NumberFormat("en-US", { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
const SVG = "http://www.w3.org/2000/svg";
const KEY_STORAGE = "lake-api-key";
const SILVER_STEP = "silver/sales_master";
const RUNS_SHOWN = 5;
// Read further back than shown, to find the latest complete batch run.
const RUNS_READ = 20;

function problem(message) {
  document.getElementById("status").textContent = message;
}

// The one pending request for a key, shared by every call that got a 401.
let keyPrompt = null;

function askForKey(message) {
  if (keyPrompt) return keyPrompt;
  keyPrompt = new Promise((resolve) => {
    const form = document.getElementById("login");
    const input = document.getElementById("api-key");
    document.getElementById("login-message").textContent = message || "";
    form.hidden = false;
    input.focus();
    form.onsubmit = (event) => {
      event.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORAGE, key);
      input.value = "";
      form.hidden = true;
      keyPrompt = null;
      resolve();
    };
  });
  return keyPrompt;
}

async function getJson(url) {
  for (;;) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    const response = await fetch(url, { cache: "no-store", headers });
    const body = await response.json();
    if (response.status === 401) {
      // Missing or wrong: forget it, ask, and try again.
      sessionStorage.removeItem(KEY_STORAGE);
      await askForKey(key ? "that key was refused: try again" : "");
      continue;
    }
    if (!response.ok) throw new Error(`${url}: ${body.error || response.status}`);
    return body;
  }
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

// Horizontal bars: one per item, the value printed at the bar's end.
function bars(svg, items, format) {
  // One SVG unit per CSS pixel, so text keeps its size in any panel.
  const rowHeight = 24, labelWidth = 150, valueWidth = 110;
  const width = Math.max(svg.clientWidth || 640, labelWidth + valueWidth + 40);
  const height = Math.max(items.length, 1) * rowHeight;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("height", height);
  svg.replaceChildren();
  const max = Math.max(...items.map((item) => item.value), 0);
  items.forEach((item, i) => {
    const y = i * rowHeight;
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", 0);
    label.setAttribute("y", y + 16);
    label.textContent = item.label;
    const bar = document.createElementNS(SVG, "rect");
    const length = max > 0 ? (item.value / max) * (width - labelWidth - valueWidth) : 0;
    bar.setAttribute("x", labelWidth);
    bar.setAttribute("y", y + 4);
    bar.setAttribute("height", rowHeight - 8);
    bar.setAttribute("width", Math.max(length, 1));
    const value = document.createElementNS(SVG, "text");
    value.setAttribute("x", labelWidth + length + 6);
    value.setAttribute("y", y + 16);
    value.textContent = format(item.value);
    svg.append(label, bar, value);
  });
}

async function loadGold() {
  const kpi = await getJson("/api/gold/kpi_summary");
  const k = kpi.rows[0] || {};
  setText("batch-date", `batch: ${kpi.date}`);
  setText("kpi-total-revenue", money.format(k.total_revenue ?? 0));
  setText("kpi-orders", whole.format(k.order_count ?? 0));
  setText("kpi-customers", whole.format(k.customer_count ?? 0));
  setText("kpi-aov", money.format(k.avg_order_value ?? 0));

  const countries = await getJson("/api/gold/revenue_by_country");
  const top = document.getElementById("top-countries");
  top.replaceChildren();
  countries.rows
    .filter((row) => row.rank <= 3)
    .sort((a, b) => a.rank - b.rank)
    .forEach((row) => {
      const li = document.createElement("li");
      li.textContent = row.country;
      const value = document.createElement("span");
      value.textContent = money.format(row.revenue);
      li.appendChild(value);
      top.appendChild(li);
    });

  const categories = await getJson("/api/gold/sales_by_category");
  // Two categories may share a name (e.g. "Uncategorized" with and without
  // an id): such labels carry the id.
  const names = categories.rows.map((row) => row.category_name ?? "(no category)");
  const shared = (name) => names.filter((n) => n === name).length > 1;
  bars(
    document.getElementById("category-chart"),
    categories.rows
      .slice()
      .sort((a, b) => a.rank - b.rank)
      .map((row) => {
        const name = row.category_name ?? "(no category)";
        const label = shared(name) ? `${name} #${row.category_id ?? "none"}` : name;
        return { label, value: row.revenue };
      }),
    (v) => money.format(v),
  );

  const segments = await getJson("/api/gold/rfm_segments");
  bars(
    document.getElementById("rfm-chart"),
    segments.rows.map((row) => ({ label: row.segment, value: row.customer_count })),
    (v) => whole.format(v),
  );
  const body = document.querySelector("#rfm-table tbody");
  body.replaceChildren();
  segments.rows.forEach((row) => {
    const tr = document.createElement("tr");
    cell(tr, row.segment);
    cell(tr, whole.format(row.customer_count));
    cell(tr, money.format(row.revenue));
    cell(tr, oneDecimal.format(row.avg_recency_days));
    cell(tr, oneDecimal.format(row.avg_frequency));
    cell(tr, money.format(row.avg_monetary));
    body.appendChild(tr);
  });
}

function showFreshness(freshness) {
  const badge = document.getElementById("freshness");
  if (!freshness) {
    badge.textContent = "live: waiting for the stream";
    badge.className = "badge";
    return;
  }
  const parts = [];
  if (freshness.last_event_time) parts.push(`last event ${timeOf(freshness.last_event_time)} UTC`);
  if (freshness.lag !== null && freshness.lag !== undefined) parts.push(`lag ${whole.format(freshness.lag)}`);
  const age = freshness.last_checkpoint_age_seconds;
  if (age !== null && age !== undefined) parts.push(`checkpoint ${oneDecimal.format(age)} s ago`);
  badge.textContent = `live: ${parts.join(" · ")}`;
  badge.className = age !== null && age !== undefined && age < 10 ? "badge fresh" : "badge stale";
}

async function loadLive() {
  const live = await getJson("/api/live/sales-by-country");
  const rows = live.rows.slice().sort((a, b) => b.total_ventes_live - a.total_ventes_live);
  const body = document.querySelector("#live-table tbody");
  body.replaceChildren();
  let sales = 0, count = 0;
  rows.forEach((row) => {
    const tr = document.createElement("tr");
    tr.dataset.country = row.pays;
    cell(tr, row.pays);
    cell(tr, money.format(row.total_ventes_live));
    cell(tr, whole.format(row.nb_transactions));
    cell(tr, timeOf(row.last_event_time));
    body.appendChild(tr);
    sales += row.total_ventes_live;
    count += row.nb_transactions;
  });
  setText("live-total-sales", money.format(sales));
  setText("live-total-count", whole.format(count));
  bars(
    document.getElementById("live-chart"),
    rows.slice(0, 10).map((row) => ({ label: row.pays, value: row.total_ventes_live })),
    (v) => money.format(v),
  );
  showFreshness(live.freshness);
  showDlq(live.freshness);
}

function timeOf(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "";
}

function seconds(ms) {
  return `${oneDecimal.format(ms / 1000)} s`;
}

// One row per reason, with its share of `input`; a total row last.
function reasons(tableId, counts, input) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  const entries = Object.entries(counts || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  let total = 0;
  entries.forEach(([reason, count]) => {
    const tr = document.createElement("tr");
    tr.dataset.reason = reason;
    cell(tr, reason);
    cell(tr, whole.format(count));
    cell(tr, input > 0 ? percent.format(count / input) : "");
    body.appendChild(tr);
    total += count;
  });
  const tr = document.createElement("tr");
  tr.className = "total";
  cell(tr, entries.length ? "Total" : "none");
  cell(tr, whole.format(total));
  cell(tr, input > 0 ? percent.format(total / input) : "");
  body.appendChild(tr);
}

function showDlq(freshness) {
  const consumed = freshness ? freshness.events_consumed : 0;
  setText("dlq-input", `of ${whole.format(consumed)} events consumed`);
  reasons("dlq-table", freshness ? freshness.dlq : {}, consumed);
}

// The last runs, and from the latest complete one the batch freshness and
// the silver rejects (the gold figures shown are that run's).
async function loadRuns() {
  const { runs } = await getJson(`/api/runs?limit=${RUNS_READ}`);
  const body = document.querySelector("#runs-table tbody");
  body.replaceChildren();
  runs.slice(0, RUNS_SHOWN).forEach((run) => {
    const tr = document.createElement("tr");
    tr.dataset.runId = run.run_id;
    cell(tr, run.run_id);
    cell(tr, run.date);
    cell(tr, timeOf(run.started_at));
    cell(tr, seconds(new Date(run.finished_at) - new Date(run.started_at)));
    cell(tr, run.outcome);
    tr.children[4].className = `outcome-${run.outcome}`;
    cell(
      tr,
      run.steps.map((step) => `${step.name} ${seconds(step.duration_ms)} ${step.outcome}`).join(" · "),
    );
    body.appendChild(tr);
  });
  // The latest complete batch run with a silver step (its rejects are the
  // panel's): a stream run (kind "stream") is never one, as the server's
  // catalog decides too.
  const complete = runs.find(
    (run) =>
      run.kind === "batch" &&
      run.outcome === "succeeded" &&
      run.steps.some((step) => step.name === SILVER_STEP),
  );
  const badge = document.getElementById("batch-freshness");
  if (!complete) {
    badge.textContent = "batch run: none complete yet";
    badge.className = "badge stale";
    reasons("rejects-table", {}, 0);
    return;
  }
  const ageHours = (Date.now() - new Date(complete.finished_at)) / 3600000;
  badge.textContent = `batch run ${complete.date}, finished ${timeOf(complete.finished_at)} UTC`;
  badge.className = ageHours < 24 ? "badge fresh" : "badge stale";
  const silver = complete.steps.find((step) => step.name === SILVER_STEP);
  const lines = silver ? silver.rows_in : 0;
  setText("rejects-input", `of ${whole.format(lines)} order lines, run ${complete.run_id}`);
  reasons("rejects-table", silver ? silver.rejects : {}, lines);
}

async function refreshRuns() {
  try {
    await loadRuns();
  } catch (err) {
    problem(err.message);
  } finally {
    setTimeout(refreshRuns, 15000);
  }
}

async function refreshLive() {
  try {
    await loadLive();
  } catch (err) {
    problem(err.message);
  } finally {
    setTimeout(refreshLive, 1000);
  }
}

loadGold().catch((err) => problem(err.message));
refreshRuns();
refreshLive();
