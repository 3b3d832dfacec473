// The Sites panel: each site with the actions the control plane says this caller may take
// now (its allowed_actions), a "New site" form, and live status. It follows the tenant's
// operation events (SSE), so steps, new sites (a chat's too) and deletions show without a
// reload. The browser keeps no policy: a button exists only if the API listed the action.

import { openWpAdmin } from "./api.js";
import { coalesced } from "./coalesce.js";
import { actionButton, confirmDialog } from "./controls.js";
import { h } from "./dom.js";
import { follow } from "./events.js";
import { StagingActions, parentsFirst } from "./staging.js";

const COLUMNS = ["Site", "Status", "Preview URL", "Domains", "WordPress", "Updates", "Actions", "Deployments"];
const FIELDS = [
  { key: "name", label: "Name", type: "text", placeholder: "crumbs" },
  { key: "title", label: "Title", type: "text", placeholder: "Crumbs Bakery" },
  { key: "admin_email", label: "Admin e-mail", type: "email", placeholder: "you@example.com" },
  { key: "domain", label: "Domain", type: "text", placeholder: "www.example.com" },
];
// The operation words come from the chat service's GET /v1/vocabulary, fetched once.
let FINISHED = new Set();
let ANNOUNCED = new Set();
const vocabulary = fetch(new URL("v1/vocabulary", new URL("/", location.href)))
  .then((response) => (response.ok ? response.json() : {}))
  .then((words) => {
    FINISHED = new Set(words.finished_operation_statuses || []);
    ANNOUNCED = new Set(words.announced_events || []);
  })
  .catch(() => {});

const badge = (status) => h("span", { class: `badge ${status}` }, status);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const enc = encodeURIComponent;
// SiteRead.updates_available is null until the site's packages were first read.
const updatesText = (site) => (site.updates_available == null ? "—" : String(site.updates_available));
const changeText = (c) => `${c.kind === "core" ? "WordPress" : c.slug} ${c.from_version || "not installed"} -> ${c.to_version}`;

export class SitesPanel {
  // container: the panel's body; announce(text): the polite live region; showError(error or
  // null): the page's alert; onUnauthorized(): the token is no longer accepted.
  constructor(api, { container, announce, showError, onUnauthorized }) {
    this.api = api;
    this.container = container;
    this.announce = announce;
    this.showError = showError;
    this.onUnauthorized = onUnauthorized;
    this.tenant = null;
    this.controller = null;
  }

  tenantPath() {
    return `/v1/tenants/${enc(this.tenant)}`;
  }

  // Show the tenant's sites; the first time for a tenant, follow its events first, so that
  // nothing that happens between reading the list and opening the stream is missed.
  async show(tenant) {
    if (tenant !== this.tenant) this.follow(tenant);
    await this.opened;
    await this.reload();
  }

  follow(tenant) {
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    Object.assign(this, { tenant, sites: new Map(), rows: new Map(), ops: new Map(), latestOp: new Map(),
      history: new Map(), claims: new Map(), touched: new Set(), list: null, form: null,
      selected: new Set(), bulk: null, bulkStatus: h("p", { class: "muted", role: "status", "data-key": "bulk-status" }),
      staging: new StagingActions(this) });
    // One refresh at a time; events that arrive meanwhile make one more. The list (never a
    // 404, unlike a deleted site) and the touched sites' operations are read back whole, so
    // the view is the control plane's state, not a replay of events.
    this.refresh = coalesced(() => this.refreshOnce(), (error) => this.showError(error));
    let first = true;
    this.opened = new Promise((resolve) => {
      follow(this.api, `${this.tenantPath()}/operations/events`, {
        signal: this.controller.signal,
        onOpen: () => {
          if (first) { first = false; resolve(); } else this.reload().catch((error) => this.showError(error)); // back after a drop
        },
        onEvent: (event) => this.onEvent(JSON.parse(event.data)),
        onError: (error) => {
          if (error.status === 401) this.onUnauthorized();
          else this.showError(new Error(`Live updates paused: ${error.message}`));
          resolve();
        },
      });
    });
  }

  async reload() {
    await vocabulary; // its words are needed to draw the operations
    const tenant = this.tenant;
    const [info, list] = await Promise.all([this.api.cp("GET", this.tenantPath()), this.api.cp("GET", `${this.tenantPath()}/sites`)]);
    const busy = list.filter((s) => s.current_operation_id);
    const ops = await Promise.all(busy.map((s) => this.api.cp("GET", `/v1/operations/${enc(s.current_operation_id)}`)));
    if (tenant !== this.tenant) return;
    this.allowed = info.allowed_actions;
    this.sites = new Map(list.map((s) => [s.name, s]));
    busy.forEach((s, i) => this.ops.set(s.name, ops[i]));
    this.render();
  }

  onEvent(event) {
    if (this.bulk && event.operation_id === this.bulk) this.bulkProgress(event);
    this.latestOp.set(event.site, event.operation_id);
    this.touched.add(event.site);
    if (ANNOUNCED.has(event.type)) this.announce(event.message);
    this.refresh();
  }

  async refreshOnce() {
    const tenant = this.tenant;
    const touched = [...this.touched];
    this.touched.clear();
    const list = await this.api.cp("GET", `${this.tenantPath()}/sites`);
    const ops = await Promise.all(touched.map((name) => this.api.cp("GET", `/v1/operations/${enc(this.latestOp.get(name))}`)));
    const histories = await Promise.all(touched.filter((name) => this.history.has(name)).map(async (name) =>
      [name, await this.api.cp("GET", `${this.tenantPath()}/sites/${enc(name)}/operations`)]));
    if (tenant !== this.tenant) return;
    touched.forEach((name, i) => this.ops.set(name, ops[i]));
    for (const [name, history] of histories) this.history.set(name, history);
    const before = this.sites;
    this.sites = new Map(list.map((s) => [s.name, s]));
    const changed = new Set(touched);
    for (const name of new Set([...before.keys(), ...this.sites.keys()])) {
      if (JSON.stringify(before.get(name)) !== JSON.stringify(this.sites.get(name))) changed.add(name);
    }
    for (const name of changed) this.updateRow(name);
  }

  render() {
    if (!this.form && this.allowed.includes("create_site")) this.form = this.newSiteForm();
    if (this.form && !this.allowed.includes("create_site")) this.form = null;
    this.rows = new Map(parentsFirst([...this.sites.values()]).map((site) => [site.name, this.row(site)]));
    this.list = this.sites.size
      ? h("table", {}, h("thead", {}, h("tr", {}, ...COLUMNS.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, ...this.rows.values()))
      : h("p", { class: "muted" }, this.form ? "No sites yet: create one below, or ask the chat." : "No sites yet: ask the chat to create one.");
    this.container.replaceChildren(this.bulkBar(), this.list, this.form || "");
  }

  // Checked sites and the buttons that act on all of them at once (tenant action "bulk").
  bulkBar() {
    if (!this.allowed.includes("bulk")) return "";
    const run = (action, text) => actionButton(this, `bulk-${action}`, text, text, () => this.startBulk(action),
      { disabled: this.selected.size === 0 });
    this.bulkButtons = [run("backup", "Back up selected"), run("update", "Update selected")];
    return h("div", { class: "bulk-bar", role: "group", "aria-label": "Selected sites" }, ...this.bulkButtons, this.bulkStatus);
  }

  select(name, checked) {
    if (checked) this.selected.add(name);
    else this.selected.delete(name);
    for (const b of this.bulkButtons || []) b.disabled = this.selected.size === 0;
  }

  // A bulk parent's child_finished events say how far it is ("3 of 10 done, 1 failed"); once
  // it ended, the operation itself says which sites failed and why.
  bulkProgress(event) {
    if (event.type === "child_finished") this.bulkStatus.textContent = event.message;
    else if (ANNOUNCED.has(event.type) && event.type !== "operation_started") {
      const id = this.bulk;
      this.api.cp("GET", `/v1/operations/${enc(id)}`).then((op) => {
        if (id !== this.bulk || !op.progress) return;
        const p = op.progress;
        this.bulkStatus.textContent = `${op.status}: ${p.done} of ${p.total} done, ${p.failed} failed${op.error ? ` (${op.error})` : ""}`;
      }).catch((error) => this.showError(error));
    }
  }

  async startBulk(action) {
    const sites = [...this.selected].sort();
    if (action === "update" && !(await confirmDialog({
      id: "confirm-bulk", title: `Update ${sites.length} sites?`, confirmText: "Update selected",
      text: `${sites.join(", ")}: each to the newest versions in the catalogue. A backup of each is taken first; a site whose check fails after its update is rolled back from it.`,
    }))) return;
    const accepted = await this.api.cp("POST", `${this.tenantPath()}/bulk`, { action, sites });
    this.bulk = accepted.operation.id;
    this.bulkStatus.textContent = `0 of ${accepted.sites.length} done, 0 failed`;
  }

  // Replace one row in place (or add or drop it), keeping the keyboard focus where it was.
  updateRow(name) {
    const old = this.rows.get(name);
    const site = this.sites.get(name);
    if (!old || !site) {
      if (old && !site) this.announce(`Site ${name} is gone.`);
      this.render();
      return;
    }
    const active = document.activeElement;
    const key = old.contains(active) ? active.dataset.key : null;
    const row = this.row(site);
    old.replaceWith(row);
    this.rows.set(name, row);
    if (key) (row.querySelector(`[data-key="${key}"]`) || row.querySelector("[data-key=name]")).focus();
  }

  row(site) {
    const url = site.preview_url ? h("a", { href: site.preview_url, target: "_blank", rel: "noopener" }, site.preview_url) : "";
    const cron = site.cron
      ? h("div", { class: "muted", title: site.cron.detail }, `cron ${site.cron.status} ${when(site.cron.last_run_at)}`)
      : null;
    const staging = site.role === "staging";
    return h("tr", { "data-site": site.name, class: staging ? "staging" : false },
      h("td", {}, this.checkbox(site), h("strong", { tabindex: "-1", "data-key": "name" }, site.name), " ", this.staging.badge(site), h("div", { class: "muted" }, site.title)),
      h("td", {}, badge(site.status), cron, this.steps(site)), h("td", {}, url), this.domainsCell(site),
      h("td", {}, site.wordpress_version || "—"), h("td", { "data-key": "updates" }, updatesText(site)),
      h("td", { class: "actions" }, ...this.actionButtons(site), this.staging.driftPanel(site)), this.historyCell(site));
  }

  checkbox(site) {
    if (!this.allowed.includes("bulk")) return null;
    return h("input", { type: "checkbox", "data-key": "select", "aria-label": `Select ${site.name}`,
      checked: this.selected.has(site.name), onchange: (e) => this.select(site.name, e.currentTarget.checked) });
  }

  // The latest operation this page saw (or the one running now), step by step.
  steps(site) {
    const op = this.ops.get(site.name);
    if (!op) return null;
    return h("div", { class: "op" }, h("span", { class: "muted" }, `${op.kind.replace("_", " ")} `), badge(op.status),
      h("ol", { class: "steps", "aria-label": `Steps of ${op.kind.replace("_", " ")} ${site.name}` },
        ...op.steps.map((s) => h("li", { class: s.status }, `${s.name} `, h("span", { class: "muted" }, s.status)))),
      op.error && FINISHED.has(op.status) ? h("div", { class: "error" }, op.error) : null);
  }

  actionButtons(site) {
    const allowed = new Set(site.allowed_actions);
    const button = (action, text, label, run, extra = {}) => (allowed.has(action)
      ? actionButton(this, action, text, label, run, extra)
      : null);
    const path = `${this.tenantPath()}/sites/${enc(site.name)}`;
    return [
      button("stop", "Stop", `Stop ${site.name}`, () => this.change("POST", `${path}/stop`)),
      button("start", "Start", `Start ${site.name}`, () => this.change("POST", `${path}/start`)),
      button("update", "Update", `Update ${site.name}`, () => this.update(site, path)),
      button("admin_login", "Open wp-admin", `Open wp-admin of ${site.name}`, () => openWpAdmin(this.api, site.tenant_id, site.name)),
      button("delete", "Delete", `Delete ${site.name}`, async (target) => {
        if (await this.confirmDelete(site)) {
          await this.change("DELETE", path);
          return;
        }
        // Cancelled: the focus goes back to Delete (the row's new one, if it was redrawn).
        const row = this.rows.get(site.name);
        const again = target.isConnected ? target : row && row.querySelector("[data-key=delete]");
        if (again) { again.disabled = false; again.focus(); }
      }, { class: "danger" }),
      ...this.staging.buttons(site, button),
    ].filter(Boolean);
  }

  // Start a change; the answer already carries the site and its operation, and the events
  // take it from there.
  async change(method, path) {
    this.accept(await this.api.cp(method, path));
  }

  // An operation a 202 started on a site the list has (a promotion runs on production).
  started(name, operation) {
    this.ops.set(name, operation);
    this.latestOp.set(name, operation.id);
    this.updateRow(name);
  }

  // A 202's site and operation, shown at once.
  accept(accepted) {
    this.sites.set(accepted.site.name, accepted.site);
    this.ops.set(accepted.site.name, accepted.operation);
    this.latestOp.set(accepted.site.name, accepted.operation.id);
    if (this.rows.has(accepted.site.name)) this.updateRow(accepted.site.name);
    else this.render();
  }

  // The dry run says exactly what changes; the dialog lists it before anything starts.
  async update(site, path) {
    const plan = await this.api.cp("POST", `${path}/updates`, { dry_run: true });
    const confirmed = await confirmDialog({
      id: "confirm-update", title: `Update site ${site.name}?`, confirmText: `Update ${site.name}`,
      text: `${plan.changes.map(changeText).join(", ")}. A backup is taken first; if a check after the update fails, it is rolled back from that backup.`,
    });
    if (!confirmed) return;
    const accepted = await this.api.cp("POST", `${path}/updates`, {});
    this.started(site.name, accepted.operation);
  }

  // A modal that names the site and tenant; Cancel has the focus, Escape cancels.
  confirmDelete(site) {
    return confirmDialog({
      id: "confirm-delete", title: `Delete site ${site.name}?`, confirmText: `Delete ${site.name}`,
      text: `Site ${site.name} of tenant ${site.tenant_id}: its database, files and address are removed; a backup is taken first.`,
    });
  }

  // The API checks every field; its 422 problem names each one, shown next to the field.
  newSiteForm() {
    const inputs = new Map();
    const errors = new Map();
    const formError = h("p", { class: "error", role: "alert" });
    const fields = FIELDS.map((f) => {
      const id = `new-site-${f.key}`;
      const error = h("span", { class: "field-error", id: `${id}-error` });
      const input = h("input", { id, name: f.key, type: f.type, placeholder: f.placeholder, autocomplete: "off", "aria-describedby": error.id });
      inputs.set(f.key, input);
      errors.set(f.key, error);
      return h("label", { for: id }, f.label, input, error);
    });
    const submit = h("button", { class: "primary", type: "submit" }, "Create site");
    const clear = () => {
      formError.textContent = "";
      for (const [key, input] of inputs) { input.removeAttribute("aria-invalid"); errors.get(key).textContent = ""; }
    };
    const form = h("form", { class: "inline new-site", novalidate: true, "aria-label": "New site", onsubmit: async (e) => {
      e.preventDefault();
      clear();
      const body = {};
      for (const [key, input] of inputs) if (input.value.trim()) body[key] = input.value.trim();
      submit.disabled = true;
      try {
        const accepted = await this.api.cp("POST", `${this.tenantPath()}/sites`, body);
        form.reset();
        this.announce(`Creating site ${accepted.site.name}…`);
        this.accept(accepted);
      } catch (error) {
        if (error.status === 401) { this.onUnauthorized(); return; }
        let first = null;
        for (const { field, message } of error.errors) {
          const key = field.replace(/^body\./, "");
          if (!inputs.has(key)) continue;
          inputs.get(key).setAttribute("aria-invalid", "true");
          errors.get(key).textContent = message;
          first = first || inputs.get(key);
        }
        if (first) first.focus();
        else formError.textContent = error.message;
      } finally {
        submit.disabled = false;
      }
    } }, ...fields, submit);
    return h("section", { class: "new-site", "aria-labelledby": "new-site-heading" }, h("h3", { id: "new-site-heading" }, "New site"), form, formError);
  }

  historyCell(site) {
    const shown = this.history.get(site.name);
    const toggle = h("button", { type: "button", "data-key": "history", "aria-expanded": String(Boolean(shown)), onclick: () => this.expand(toggle, site.name, this.history,
      () => this.api.cp("GET", `${this.tenantPath()}/sites/${enc(site.name)}/operations`)) }, shown ? "Hide history" : "History");
    const list = shown
      ? h("ol", { class: "history", "aria-label": `Deployment history of ${site.name}` },
        ...shown.map((op) => h("li", {}, `${op.kind} `, badge(op.status), ` ${when(op.created_at)} by ${op.requested_by}`,
          h("div", { class: "muted" }, op.steps.map((s) => `${s.name}: ${s.status}`).join(" · ")),
          op.error ? h("div", { class: "error" }, op.error) : null)))
      : null;
    return h("td", {}, toggle, list);
  }

  // Verified domains are served; a pending one waits for its TXT record, which the button shows.
  domainsCell(site) {
    const pending = site.pending_domains || [];
    const cell = h("td", {}, site.domains.join(", ") || (pending.length ? "" : "—"));
    if (!pending.length) return cell;
    const claims = this.claims.get(site.name);
    const show = h("button", { type: "button", "data-key": "domains", "aria-expanded": String(Boolean(claims)), onclick: () => this.expand(show, site.name, this.claims,
      () => this.api.cp("GET", `${this.tenantPath()}/sites/${enc(site.name)}/domains`)) }, `${pending.length} pending: how to verify`);
    const records = claims
      ? h("ul", { class: "domains", "aria-label": `Pending domains of ${site.name}` },
        ...claims.filter((c) => c.status !== "verified").map((c) => h("li", {}, h("strong", {}, c.domain), " ", badge(c.status),
          h("div", { class: "muted" }, `Create TXT ${c.verification.name} = "${c.verification.value}", then verify`),
          c.last_error ? h("div", { class: "error" }, c.last_error) : null)))
      : null;
    cell.append(h("div", {}, ...pending.map((d) => h("span", { class: "muted" }, `${d} `)), show), records || "");
    return cell;
  }

  // Open (load into `store`) or close a row's details; they stay open while the row changes.
  async expand(button, name, store, load) {
    if (store.has(name)) {
      store.delete(name);
    } else {
      button.disabled = true;
      try {
        store.set(name, await load());
      } catch (error) {
        button.disabled = false;
        this.showError(error);
        return;
      }
    }
    this.updateRow(name);
  }
}
