// The dashboard: gold figures once, live views every second, from the
// server's JSON API. Text from the data goes in with textContent only
// (country names come from events anyone can produce).
"use strict";

const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const SVG = "http://www.w3.org/2000/svg";

function problem(message) {
  document.getElementById("status").textContent = message;
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(`${url}: ${body.error || response.status}`);
  return body;
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
  if (freshness.last_event_time) parts.push(`last event ${freshness.last_event_time.replace("T", " ").slice(0, 19)} UTC`);
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
    cell(tr, row.last_event_time ? row.last_event_time.replace("T", " ").slice(0, 19) : "");
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
refreshLive();
