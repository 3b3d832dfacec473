// The dashboard: sites with their actions, live status and deployment history (sites.js),
// each site's backups and the deleted sites that can come back (backups.js), costs per day, recent errors, the tenant's env vars and secrets, and for admins every
// tenant and the users' roles.

import { Api, getToken, signOut } from "./api.js";
import { BackupsPanel } from "./backups.js";
import { barChart, formatMoney } from "./chart.js";
import { h } from "./dom.js";
import { SitesPanel } from "./sites.js";

const api = new Api();
const state = { me: null, tenant: null, tab: "sites" };

const body = (id) => document.querySelector(`#${id} .body`);
const showError = (e) => { document.getElementById("error").textContent = e ? `${e.message}` : ""; };
const announce = (text) => { document.getElementById("live").textContent = text; };
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const tenantPath = () => `/v1/tenants/${encodeURIComponent(state.tenant)}`;
const leave = () => { signOut(); location.href = "/signin"; };
const panel = new SitesPanel(api, { container: body("sites"), announce, showError, onUnauthorized: leave });
const sites = () => panel.show(state.tenant);
const backupsPanel = new BackupsPanel(api, { container: body("backups"), announce, showError, onUnauthorized: leave });
const backups = () => backupsPanel.show(state.tenant);

async function costs() {
  const report = await api.cp("GET", `${tenantPath()}/billing?group_by=day`);
  const target = body("costs");
  if (!report.refreshed_at) return target.replaceChildren(h("p", { class: "muted" }, "No cost data yet: the billing job has not run."));
  if (!report.totals.length) return target.replaceChildren(h("p", { class: "muted" }, "No costs this month."));
  const currency = report.totals[0].currency;
  const perDay = new Map(report.lines.filter((l) => l.currency === currency).map((l) => [l.key, l.net]));
  const days = [];
  for (let d = new Date(`${report.from}T00:00:00Z`); d <= new Date(`${report.to}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    const key = d.toISOString().slice(0, 10);
    days.push({ label: key, value: perDay.get(key) || 0 });
  }
  const chart = barChart(days, { currency, title: "Net cost per day" });
  const byService = await api.cp("GET", `${tenantPath()}/billing?group_by=service`);
  target.replaceChildren(
    h("p", {}, "Total: ", h("strong", {}, report.totals.map((t) => formatMoney(t.net, t.currency)).join(" + ")),
      h("span", { class: "muted" }, ` · refreshed ${when(report.refreshed_at)} from ${report.source}`)),
    h("figure", {}, chart),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Service"), h("th", { scope: "col" }, "Net"))),
      h("tbody", {}, ...byService.lines.map((l) => h("tr", {}, h("td", {}, l.key), h("td", {}, formatMoney(l.net, l.currency)))))));
}

async function errors() {
  const list = await api.cp("GET", `${tenantPath()}/sites`);
  const found = [];
  for (const site of list) {
    const logs = await api.cp("GET", `${tenantPath()}/sites/${encodeURIComponent(site.name)}/logs?severity=error&since=24h&limit=20`);
    for (const entry of logs.entries) found.push({ site: site.name, ...entry });
  }
  found.sort((a, b) => (a.time < b.time ? 1 : -1));
  body("errors").replaceChildren(found.length
    ? h("table", {}, h("tbody", {}, ...found.slice(0, 50).map((e) => h("tr", {}, h("td", {}, when(e.time)), h("td", {}, e.site), h("td", {}, e.source), h("td", {}, e.message)))))
    : h("p", { class: "muted" }, "No errors in the last 24 hours."));
}

async function settings() {
  const vars = await api.cp("GET", `${tenantPath()}/env`);
  const name = h("input", { name: "name", required: true, pattern: "[A-Z_][A-Z0-9_]*", placeholder: "STRIPE_KEY", "aria-label": "Name" });
  const value = h("input", { name: "value", required: true, "aria-label": "Value", autocomplete: "off" });
  const secret = h("input", { type: "checkbox", name: "secret", checked: true, "aria-label": "Secret (write-only)" });
  const form = h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api.cp("PUT", `${tenantPath()}/env/${encodeURIComponent(name.value)}`, { value: value.value, secret: secret.checked });
      showError(null);
      await settings();
    } catch (error) { showError(error); }
  } }, h("label", {}, "Name", name), h("label", {}, "Value", value), h("label", {}, "Secret", secret), h("button", { class: "primary", type: "submit" }, "Save"));
  const rows = vars.map((v) => h("tr", {}, h("td", {}, h("code", {}, v.name)), h("td", {}, v.secret ? "•••••••• (secret)" : v.value),
    h("td", {}, h("button", { type: "button", "aria-label": `Delete ${v.name}`, onclick: async () => { await api.cp("DELETE", `${tenantPath()}/env/${encodeURIComponent(v.name)}`); await settings(); } }, "Delete"))));
  body("settings").replaceChildren(rows.length ? h("table", {}, h("tbody", {}, ...rows)) : h("p", { class: "muted" }, "No env vars yet."), form);
}

async function overview() {
  const summary = await api.cp("GET", "/v1/billing/summary");
  const tenants = await api.cp("GET", "/v1/tenants");
  const rows = [];
  for (const tenant of tenants) {
    const count = (await api.cp("GET", `/v1/tenants/${encodeURIComponent(tenant.id)}/sites`)).length;
    const cost = summary.tenants.filter((t) => t.tenant_id === tenant.id).map((t) => formatMoney(t.net, t.currency)).join(" + ") || "—";
    rows.push(h("tr", {}, h("td", {}, h("button", { type: "button", onclick: () => selectTenant(tenant.id, "sites") }, tenant.id)), h("td", {}, tenant.name), h("td", {}, String(count)), h("td", {}, cost)));
  }
  const currency = (summary.totals[0] || {}).currency || "USD";
  body("overview").replaceChildren(
    summary.tenants.length ? h("figure", {}, barChart(summary.tenants.filter((t) => t.currency === currency).map((t) => ({ label: t.tenant_id, value: t.net })), { currency, title: "Cost by tenant" })) : h("p", { class: "muted" }, "No cost data yet."),
    h("table", {}, h("thead", {}, h("tr", {}, ...["Tenant", "Name", "Sites", "Cost this month"].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, ...rows)));
}

async function users() {
  const list = await api.cp("GET", "/v1/users");
  const uid = h("input", { required: true, "aria-label": "User id", placeholder: "carol" });
  const role = h("select", { "aria-label": "Role" }, ...["tenant", "operator", "viewer", "admin"].map((r) => h("option", { value: r }, r)));
  const tenants = h("input", { "aria-label": "Tenants (comma-separated)", placeholder: "acme, globex" });
  const email = h("input", { type: "email", "aria-label": "E-mail", placeholder: "carol@example.com" });
  const form = h("form", { class: "inline", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api.cp("PUT", `/v1/users/${encodeURIComponent(uid.value)}`, { role: role.value, email: email.value || null,
        tenants: tenants.value.split(",").map((t) => t.trim()).filter(Boolean) });
      showError(null);
      await users();
    } catch (error) { showError(error); }
  } }, h("label", {}, "User", uid), h("label", {}, "Role", role), h("label", {}, "Tenants", tenants), h("label", {}, "E-mail", email), h("button", { class: "primary", type: "submit" }, "Save"));
  body("users").replaceChildren(h("table", {}, h("tbody", {}, ...list.map((u) => h("tr", {}, h("td", {}, u.uid), h("td", {}, u.role), h("td", {}, u.tenants.join(", ") || "—"), h("td", {}, u.email || ""))))), form);
}

const LOADERS = { sites, backups, costs, errors, settings, overview, users };

// One load per tab and tenant at a time: a second visit while the first still loads waits
// for it, so a late first answer cannot redraw a form the user has started to fill.
const loading = new Map();
function load(tab) {
  const key = `${tab} ${state.tenant}`;
  if (!loading.has(key)) {
    const live = { sites: panel, backups: backupsPanel }[tab]; // these redraw in place
    if (!live || live.tenant !== state.tenant) body(tab).replaceChildren(h("p", { class: "muted" }, "Loading…"));
    loading.set(key, LOADERS[tab]().finally(() => loading.delete(key)));
  }
  return loading.get(key);
}

async function show(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[role=tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
    button.tabIndex = button.dataset.tab === tab ? 0 : -1; // one tab stop for the tab list
  }
  for (const section of document.querySelectorAll("[role=tabpanel]")) section.hidden = section.id !== tab;
  if (!state.tenant) return; // still signing in: start() loads the chosen tab
  try {
    await load(tab);
    showError(null);
  } catch (error) {
    if (error.status === 401) { leave(); return; }
    showError(error);
  }
}

function selectTenant(tenant, tab = state.tab) {
  state.tenant = tenant;
  document.getElementById("tenant").value = tenant;
  const chat = document.getElementById("chat");
  if (state.me.role !== "admin" && chat.dataset.tenant !== tenant) {
    if (chat.dataset.tenant && chat.resetThread) chat.resetThread();
    chat.dataset.tenant = tenant;
  }
  show(tab);
}

async function start() {
  if (!getToken()) { location.href = "/signin"; return; }
  try {
    state.me = await api.cp("GET", "/v1/me");
  } catch (error) {
    signOut();
    location.href = "/signin";
    return;
  }
  const me = state.me;
  document.getElementById("who").textContent = `${me.email || me.sub} · ${me.role}`;
  const tenants = me.role === "admin" ? (await api.cp("GET", "/v1/tenants")).map((t) => t.id) : me.tenants;
  const select = document.getElementById("tenant");
  select.replaceChildren(...tenants.map((t) => h("option", { value: t }, t)));
  select.addEventListener("change", () => selectTenant(select.value));
  document.getElementById("tenant-box").hidden = tenants.length < 2;
  for (const node of document.querySelectorAll("[data-admin]")) node.hidden = me.role !== "admin";
  if (!tenants.length) { showError(new Error("Your sign-in carries no tenant.")); return; }
  selectTenant(tenants[0]); // on the tab the user chose while this loaded, if any
}

// Wired before anything is awaited: a tab chosen while the dashboard loads is kept.
function wireTabs() {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  for (const button of tabs) {
    button.addEventListener("click", () => show(button.dataset.tab));
    // Arrow keys move between the visible tabs (the WAI-ARIA tabs pattern).
    button.addEventListener("keydown", (event) => {
      if (!["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
      const visible = tabs.filter((t) => !t.hidden);
      const at = visible.indexOf(button);
      const next = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: visible.length - 1 }[event.key];
      const target = visible[(next + visible.length) % visible.length];
      event.preventDefault();
      target.focus();
      show(target.dataset.tab);
    });
  }
  document.getElementById("signout").addEventListener("click", () => { signOut(); location.href = "/signin"; });
}

wireTabs();
start();
