// The Backups panel: one site's backups (kind, time, size, status, verified) with "Back up
// now", "Restore" (a dialog naming the backup's time) and the owner's "Download"; the site's
// schedule and retention; and the tenant's deleted sites with "Restore as new site". It
// follows the tenant's operation events, so a backup shows pending, then written, without a
// reload (the Sites panel, which follows the same events, announces them). As there, a
// button exists only if the API listed the action.

import { coalesced } from "./coalesce.js";
import { actionButton, confirmDialog } from "./controls.js";
import { h } from "./dom.js";
import { follow } from "./events.js";

const enc = encodeURIComponent;
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
const POLICY_FIELDS = [
  { key: "hour", label: "Hour (UTC)", min: 0, max: 23 },
  { key: "keep_daily", label: "Keep daily", min: 0, max: 100 },
  { key: "keep_weekly", label: "Keep weekly", min: 0, max: 100 },
  { key: "keep_monthly", label: "Keep monthly", min: 0, max: 100 },
];

// The time a backup was taken, as the dialog and the table name it (the browser's zone).
export const backupTime = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "full", timeStyle: "short" });
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const badge = (status) => h("span", { class: `badge ${status}` }, status);

export function sizeInWords(size) {
  if (size === null || size === undefined) return "—";
  let value = size;
  for (const unit of UNITS) {
    if (value < 1024 || unit === UNITS[UNITS.length - 1]) return unit === "B" ? `${size} B` : `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${size} B`;
}

export class BackupsPanel {
  // The same hooks as the Sites panel: the panel's body, the live region, the page's alert,
  // and what to do when the token is no longer accepted.
  constructor(api, { container, announce, showError, onUnauthorized }) {
    Object.assign(this, { api, container, announce, showError, onUnauthorized });
    this.tenant = null;
    this.site = null;
    this.controller = null;
    // One reload at a time; events that arrive meanwhile make one more.
    this.refresh = coalesced(() => this.reload(), (error) => {
      if (error.status === 401) this.onUnauthorized();
      else this.showError(error);
    });
  }

  tenantPath() { return `/v1/tenants/${enc(this.tenant)}`; }
  sitePath() { return `${this.tenantPath()}/sites/${enc(this.site)}`; }

  async show(tenant) {
    if (tenant !== this.tenant) {
      this.tenant = tenant;
      this.site = null;
      this.op = null;
      this.followEvents();
    }
    await this.opened;
    await this.reload();
  }

  followEvents() {
    if (this.controller) this.controller.abort();
    this.controller = new AbortController();
    let first = true;
    this.opened = new Promise((resolve) => {
      follow(this.api, `${this.tenantPath()}/operations/events`, {
        signal: this.controller.signal,
        onOpen: () => { if (first) { first = false; resolve(); } else this.refresh(); },
        onEvent: (event) => this.onEvent(JSON.parse(event.data)),
        onError: (error) => {
          if (error.status === 401) this.onUnauthorized();
          else this.showError(new Error(`Live updates paused: ${error.message}`));
          resolve();
        },
      });
    });
  }

  onEvent(event) {
    if (event.site === this.site) this.opId = event.operation_id;
    if (!this.container.closest("[hidden]")) this.refresh(); // else show() reads it all again
  }

  // Everything the panel shows, read back whole: the view is the control plane's state.
  async reload() {
    const tenant = this.tenant;
    const [info, sites, deleted] = await Promise.all([
      this.api.cp("GET", this.tenantPath()),
      this.api.cp("GET", `${this.tenantPath()}/sites`),
      this.api.cp("GET", `${this.tenantPath()}/backups?deleted=true`),
    ]);
    if (tenant !== this.tenant) return;
    const names = sites.map((s) => s.name);
    if (!names.includes(this.site)) { this.site = names[0] || null; this.opId = null; }
    const site = sites.find((s) => s.name === this.site) || null;
    let backups = [];
    let policy = null;
    let op = null;
    if (site) {
      const opId = site.current_operation_id || this.opId;
      [backups, policy, op] = await Promise.all([
        this.api.cp("GET", `${this.sitePath()}/backups`),
        this.api.cp("GET", `${this.sitePath()}/backup-policy`),
        opId ? this.api.cp("GET", `/v1/operations/${enc(opId)}`) : null,
      ]);
    }
    if (tenant !== this.tenant || (site && site.name !== this.site)) return;
    Object.assign(this, { allowed: info.allowed_actions, sites, current: site, backups, policy, deleted });
    this.op = op && ["backup_site", "restore_site"].includes(op.kind) ? op : null;
    this.render();
  }

  render() {
    const active = document.activeElement;
    const key = this.container.contains(active) ? active.dataset.key : null;
    const parts = [this.sitePicker()];
    if (this.current) parts.push(this.operation(), this.table(), this.policySection());
    else parts.push(h("p", { class: "muted" }, "No sites yet."));
    parts.push(this.deletedSection());
    this.container.replaceChildren(...parts.filter(Boolean));
    if (key) { const again = this.container.querySelector(`[data-key="${key}"]`); if (again) again.focus(); }
  }

  sitePicker() {
    if (!this.sites.length) return null;
    const select = h("select", { "aria-label": "Site", "data-key": "site", onchange: () => {
      this.site = select.value;
      this.opId = null;
      this.refresh();
    } }, ...this.sites.map((s) => h("option", { value: s.name, selected: s.name === this.site }, s.name)));
    const allowed = new Set(this.current ? this.current.allowed_actions : []);
    const now = allowed.has("backup")
      ? this.button("backup", "Back up now", `Back up ${this.site} now`, async () => {
        const accepted = await this.api.cp("POST", `${this.sitePath()}/backups`);
        this.opId = accepted.operation.id;
        await this.refresh();
      }, { class: "primary" })
      : null;
    return h("div", { class: "inline backup-site" }, h("label", {}, "Site ", select), now);
  }

  // The site's backup or restore running now (or the last one this page started), by step.
  operation() {
    const op = this.op;
    if (!op) return null;
    const what = op.kind.replace("_", " ");
    return h("div", { class: "op" }, h("span", { class: "muted" }, `${what} `), badge(op.status),
      h("ol", { class: "steps", "aria-label": `Steps of ${what} ${this.site}` },
        ...op.steps.map((s) => h("li", { class: s.status }, `${s.name} `, h("span", { class: "muted" }, s.status)))),
      op.error ? h("div", { class: "error" }, op.error) : null);
  }

  table() {
    if (!this.backups.length) return h("p", { class: "muted" }, `No backups of ${this.site} yet.`);
    const allowed = new Set(this.current.allowed_actions);
    const rows = this.backups.map((b) => {
      const usable = b.status === "succeeded";
      const actions = [
        usable && allowed.has("restore") ? this.button(`restore-${b.id}`, "Restore", `Restore ${this.site} to the backup of ${backupTime(b.created_at)}`,
          async () => { if (await this.confirmRestore(b)) await this.restore(b); }, { class: "danger" }) : null,
        usable && allowed.has("download_backup") ? this.button(`download-${b.id}`, "Download", `Download the backup of ${backupTime(b.created_at)}`,
          () => this.download(b)) : null,
      ].filter(Boolean);
      return h("tr", { "data-backup": b.id },
        h("td", {}, backupTime(b.created_at)), h("td", {}, b.kind), h("td", {}, sizeInWords(b.size_bytes)),
        h("td", {}, badge(b.status), b.error ? h("div", { class: "error" }, b.error) : null),
        h("td", {}, b.verified_at ? when(b.verified_at) : "—"), h("td", { class: "actions" }, ...actions));
    });
    return h("table", { "aria-label": `Backups of ${this.site}` },
      h("thead", {}, h("tr", {}, ...["Taken", "Kind", "Size", "Status", "Verified", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...rows));
  }

  async restore(backup) {
    const accepted = await this.api.cp("POST", `${this.sitePath()}/backups/${enc(backup.id)}/restore`);
    this.opId = accepted.operation.id;
    await this.refresh();
  }

  // The signed link expires in minutes; the browser fetches it at once (no token needed).
  async download(backup) {
    const link = await this.api.cp("POST", `${this.sitePath()}/backups/${enc(backup.id)}/download-link`);
    const anchor = h("a", { href: `/api${link.url}`, download: "", hidden: true });
    document.body.append(anchor);
    anchor.click();
    anchor.remove();
    this.announce(`Downloading the backup of ${backupTime(backup.created_at)}.`);
  }

  // Kept across redraws while the site, its policy and the caller's rights stay the same, so
  // that an event arriving while the user edits the form does not wipe what they typed.
  policySection() {
    const key = JSON.stringify([this.site, this.policy, this.current.allowed_actions.includes("backup")]);
    if (this.policyNode && this.policyKey === key) return this.policyNode;
    this.policyKey = key;
    this.policyNode = this.drawPolicy();
    return this.policyNode;
  }

  drawPolicy() {
    const p = this.policy;
    const heading = h("h3", { id: "backup-policy-heading" }, "Schedule and retention");
    const summary = p.enabled
      ? `Daily at ${String(p.hour).padStart(2, "0")}:00 UTC; keeps ${p.keep_daily} daily, ${p.keep_weekly} weekly and ${p.keep_monthly} monthly backups.`
      : "Scheduled backups are off.";
    const parts = [heading, h("p", { class: "muted" }, summary, p.customized ? "" : " (the platform's defaults)")];
    if (new Set(this.current.allowed_actions).has("backup")) parts.push(this.policyForm(p));
    return h("section", { class: "policy", "aria-labelledby": heading.id }, ...parts);
  }

  policyForm(p) {
    const enabled = h("input", { type: "checkbox", name: "enabled", checked: p.enabled, "data-key": "policy-enabled" });
    const inputs = POLICY_FIELDS.map((f) => [f.key, h("input", { type: "number", name: f.key, min: f.min, max: f.max, value: String(p[f.key]), "data-key": `policy-${f.key}` })]);
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "inline", "aria-label": "Backup policy", onsubmit: async (e) => {
      e.preventDefault();
      const body = { enabled: enabled.checked };
      for (const [key, input] of inputs) body[key] = Number(input.value);
      try {
        this.policy = await this.api.cp("PUT", `${this.sitePath()}/backup-policy`, body);
        this.announce(`Backup policy of ${this.site} saved.`);
        this.render();
        const save = this.container.querySelector("[data-key=policy-save]");
        if (save) save.focus();
      } catch (failure) {
        if (failure.status === 401) { this.onUnauthorized(); return; }
        error.textContent = failure.errors.length ? failure.errors.map((x) => `${x.field.replace(/^body\./, "")}: ${x.message}`).join("; ") : failure.message;
      }
    } }, h("label", {}, "Daily backups", enabled),
    ...inputs.map(([key, input]) => h("label", {}, POLICY_FIELDS.find((f) => f.key === key).label, input)),
    h("button", { type: "submit", "data-key": "policy-save" }, "Save policy"));
    return h("div", {}, form, error);
  }

  deletedSection() {
    const heading = h("h3", { id: "deleted-sites-heading" }, "Deleted sites");
    const may = (this.allowed || []).includes("restore_site");
    const body = this.deleted.length
      ? h("table", { "aria-label": "Backups of deleted sites" },
        h("thead", {}, h("tr", {}, ...["Site", "Deleted", "Backup taken", "Kind", "Size", "Kept until", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...this.deleted.map((b) => h("tr", { "data-backup": b.id },
          h("td", {}, b.site_name), h("td", {}, when(b.site_deleted_at)), h("td", {}, backupTime(b.created_at)), h("td", {}, b.kind),
          h("td", {}, sizeInWords(b.size_bytes)), h("td", {}, when(b.kept_until)),
          h("td", { class: "actions" }, may && b.status === "succeeded"
            ? this.button(`undelete-${b.id}`, "Restore as new site", `Restore ${b.site_name} as a new site from the backup of ${backupTime(b.created_at)}`,
              async () => {
                const name = await this.confirmUndelete(b);
                if (name) await this.undelete(b, name);
              })
            : null)))))
      : h("p", { class: "muted" }, "No deleted sites with kept backups.");
    return h("section", { class: "deleted", "aria-labelledby": heading.id }, heading, body);
  }

  async undelete(backup, name) {
    const accepted = await this.api.cp("POST", `${this.tenantPath()}/sites`, { name, from_backup: { site: backup.site_name, backup: backup.id } });
    this.site = accepted.site.name;
    this.opId = accepted.operation.id;
    await this.refresh();
  }

  button(key, text, label, run, extra = {}) {
    return actionButton(this, key, text, label, run, extra);
  }

  // A modal that names the backup's time and what is replaced; Cancel has the focus.
  confirmRestore(backup) {
    const taken = backupTime(backup.created_at);
    return this.dialog(`Restore ${this.site} to the backup of ${taken}?`,
      `The database and wp-content of site ${this.site} are replaced with this ${backup.kind} backup's: every change since ${taken} is lost. A backup of the site as it is now is taken first; visitors see a maintenance page while it runs.`,
      `Restore ${this.site}`);
  }

  // The new site's name (the deleted one's unless changed), or null if cancelled.
  confirmUndelete(backup) {
    const name = h("input", { name: "name", value: backup.site_name, required: true, autocomplete: "off" });
    return this.dialog(`Restore ${backup.site_name} as a new site?`,
      `A new site is made from the ${backup.kind} backup of ${backupTime(backup.created_at)}: its database and wp-content as they were then, with its addresses changed to the new site's.`,
      "Restore as new site", h("label", {}, "New site's name ", name)).then((ok) => (ok ? name.value.trim() : null));
  }

  // A modal with the question (and a field); true if confirmed. Cancel has the focus.
  dialog(title, text, confirmText, field = null) {
    return confirmDialog({ id: "confirm-backup", title, text, confirmText, fields: field ? [field] : [] });
  }
}
