// The /stats page: fetches the figures of gateway.stats (the same JSON as `deskphone-gateway report
// --format json`) with the access token, fills the tables and draws the charts with Chart.js.
"use strict";

const COLUMNS = [
  ["manager", "Manager", "text"],
  ["extension", "Ext.", "text"],
  ["calls_in", "In", "int"],
  ["calls_out", "Out", "int"],
  ["answered", "Answered", "int"],
  ["missed", "Missed", "int"],
  ["busy", "Busy", "int"],
  ["no_answer", "No answer", "int"],
  ["answer_rate", "Answer rate", "percent"],
  ["missed_not_called_back", "Not called back", "int"],
  ["ring_avg_s", "Ring avg", "seconds"],
  ["ring_p90_s", "Ring p90", "seconds"],
  ["talk_total_s", "Talk total", "duration"],
  ["talk_avg_s", "Talk avg", "duration"],
];
const COLOURS = {
  answered: "#2e7d32",
  missed: "#c62828",
  hours: "#1565c0",
  managers: ["#6a1b9a", "#ef6c00", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593", "#f9a825"],
};
const TOKEN_KEY = "deskphone-stats-token";
const charts = {};

function token() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function fetchAuthorized(url) {
  const answer = await fetch(url, { headers: { Authorization: "Bearer " + token() } });
  if (answer.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("The token was not accepted.");
    throw new Error("unauthorized");
  }
  if (!answer.ok) throw new Error((await answer.text()) || answer.statusText);
  return answer;
}

function showLogin(message) {
  document.getElementById("content").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
}

function format(value, kind) {
  if (value === null || value === undefined) return "–";
  if (kind === "percent") return (value * 100).toFixed(1) + " %";
  if (kind === "seconds") return value.toFixed(1) + " s";
  if (kind === "duration") {
    const s = Math.round(value);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + String(r).padStart(2, "0");
  }
  return String(value);
}

function fillTable(table, rows) {
  const head = table.querySelector("thead tr");
  head.replaceChildren(...COLUMNS.map(([key, label]) => {
    const th = document.createElement("th");
    th.dataset.key = key;
    th.textContent = label;
    th.addEventListener("click", () => sortBy(table, key));
    return th;
  }));
  const body = table.querySelector("tbody");
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    tr.dataset.manager = row.manager;
    for (const [key, , kind] of COLUMNS) {
      const td = document.createElement("td");
      td.dataset.key = key;
      const value = row[key];
      td.dataset.value = value === null ? "" : String(value);
      td.textContent = key === "manager" && row.name ? row.name + " (" + row.manager + ")" : format(value, kind);
      tr.appendChild(td);
    }
    return tr;
  }));
}

function sortBy(table, key) {
  const th = table.querySelector(`th[data-key="${key}"]`);
  const descending = th.getAttribute("aria-sort") !== "descending";
  table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  const numeric = COLUMNS.find(([k]) => k === key)[2] !== "text";
  const body = table.querySelector("tbody");
  const rows = [...body.rows];
  const valueOf = (tr) => tr.querySelector(`td[data-key="${key}"]`).dataset.value;
  rows.sort((a, b) => {
    const x = valueOf(a), y = valueOf(b);
    if (x === "" || y === "") return (x === "") - (y === "");
    const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
    return descending ? -order : order;
  });
  body.replaceChildren(...rows);
}

function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign(
    { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { position: "bottom" } } },
    config.options || {});
  charts[id] = new Chart(document.getElementById(id), config);
}

function drawCharts(totals, days) {
  const label = (r) => r.name || r.manager;
  draw("chart-answered", {
    type: "bar",
    data: {
      labels: totals.map(label),
      datasets: [
        { label: "Answered", data: totals.map((r) => r.answered), backgroundColor: COLOURS.answered },
        { label: "Missed", data: totals.map((r) => r.missed), backgroundColor: COLOURS.missed },
      ],
    },
  });
  const hours = Array.from({ length: 24 }, (_, h) => totals.reduce((sum, r) => sum + r.by_hour[h], 0));
  draw("chart-hours", {
    type: "bar",
    data: {
      labels: hours.map((_, h) => String(h).padStart(2, "0")),
      datasets: [{ label: "Calls", data: hours, backgroundColor: COLOURS.hours }],
    },
  });
  const periods = [...new Set(days.map((r) => r.period))].sort();
  const managers = totals.map((r) => r.manager);
  draw("chart-talk", {
    type: "bar",
    data: {
      labels: periods,
      datasets: managers.map((manager, i) => ({
        label: label(totals[i]),
        backgroundColor: COLOURS.managers[i % COLOURS.managers.length],
        data: periods.map((p) => {
          const row = days.find((r) => r.period === p && r.manager === manager);
          return row ? Math.round(row.talk_total_s / 6) / 10 : 0;
        }),
      })),
    },
    options: { scales: { x: { stacked: true }, y: { stacked: true } } },
  });
}

function query() {
  const from = document.getElementById("from").value, to = document.getElementById("to").value;
  return from && to ? `?from=${from}&to=${to}` : location.search;
}

async function load() {
  const q = query();
  const totals = await (await fetchAuthorized("/stats/data" + q)).json();
  const sep = q ? "&" : "?";
  const days = await (await fetchAuthorized("/stats/data" + q + sep + "group=day")).json();
  document.getElementById("from").value = totals.from;
  document.getElementById("to").value = totals.to;
  document.getElementById("meta").textContent =
    `${totals.from} to ${totals.to}, times in ${totals.time_zone}`;
  const managers = totals.rows.filter((r) => r.crm), apart = totals.rows.filter((r) => !r.crm);
  fillTable(document.getElementById("managers"), managers);
  fillTable(document.getElementById("desks"), apart);
  document.getElementById("apart").hidden = apart.length === 0;
  document.getElementById("login").hidden = true;
  document.getElementById("content").hidden = false;
  drawCharts(managers, days.rows.filter((r) => r.crm));
  for (const canvas of document.querySelectorAll("canvas")) {
    const r = canvas.getBoundingClientRect();
    canvas.dataset.rect = [r.left, r.top, r.width, r.height].map(Math.round).join(",");
  }
  document.body.dataset.ready = "1";
}

function isoDay(d) {
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function pickRange(which) {
  const today = new Date();
  let from, to;
  if (which === "this-week") {
    from = new Date(today); from.setDate(today.getDate() - ((today.getDay() + 6) % 7)); to = today;
  } else if (which === "this-month") {
    from = new Date(today.getFullYear(), today.getMonth(), 1); to = today;
  } else {
    from = new Date(today.getFullYear(), today.getMonth() - 1, 1); to = new Date(today.getFullYear(), today.getMonth(), 0);
  }
  document.getElementById("from").value = isoDay(from);
  document.getElementById("to").value = isoDay(to);
  apply();
}

function apply() {
  history.replaceState(null, "", location.pathname + query());
  load().catch((e) => console.error(e));
}

async function exportCsv(event) {
  event.preventDefault();
  const blob = await (await fetchAuthorized("/stats/export.csv" + query())).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `calls-${document.getElementById("from").value}-${document.getElementById("to").value}.csv`;
  link.click();
  URL.revokeObjectURL(link.href);
}

document.getElementById("period").addEventListener("submit", (e) => { e.preventDefault(); apply(); });
document.querySelectorAll("[data-range]").forEach((b) => b.addEventListener("click", () => pickRange(b.dataset.range)));
document.getElementById("csv").addEventListener("click", exportCsv);
document.getElementById("login").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value);
  load().catch((err) => console.error(err));
});
if (token()) load().catch((e) => console.error(e)); else showLogin();
