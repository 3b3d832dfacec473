// Staging in the Sites panel: "Clone to staging" on a production site, staging sites drawn
// under their parent with a badge, and on each staging site "Drift" (what changed on
// production since the clone, in sentences) and "Promote" (a dialog: all, the database
// with some tables, or the files; "Overwrite" offered only after production changed where it
// would write), and "Roll back" on the parent. As elsewhere, a button exists only if the API
// listed the action in the site's allowed_actions.

import { confirmDialog } from "./controls.js";
import { h } from "./dom.js";

const enc = encodeURIComponent;
const SCOPES = [
  { value: "all", label: "Everything (database and wp-content)" },
  { value: "database", label: "The database" },
  { value: "files", label: "wp-content only (uploads, themes, plugins)" },
];

// Production sites in name order, each followed by its staging sites.
export function parentsFirst(sites) {
  const names = new Set(sites.map((s) => s.name));
  const children = new Map();
  for (const site of sites) {
    if (site.role === "staging" && names.has(site.parent)) {
      if (!children.has(site.parent)) children.set(site.parent, []);
      children.get(site.parent).push(site);
    }
  }
  const ordered = [];
  for (const site of sites) {
    if (site.role === "staging" && names.has(site.parent)) continue;
    ordered.push(site, ...(children.get(site.name) || []));
  }
  return ordered;
}

export class StagingActions {
  // panel: the Sites panel (its api, tenantPath(), accept(), follow-ups and redraws).
  constructor(panel) {
    this.panel = panel;
    this.drifts = new Map(); // staging site -> its drift report, while its panel is open
  }

  sitePath(name) { return `${this.panel.tenantPath()}/sites/${enc(name)}`; }

  // The badge a staging site's name carries.
  badge(site) {
    return site.role === "staging" ? h("span", { class: "badge staging" }, `staging of ${site.parent}`) : null;
  }

  // The staging buttons of a row: `button(action, text, label, run, extra)` as the panel makes them.
  buttons(site, button) {
    return [
      button("clone", "Clone to staging", `Clone ${site.name} to a staging site`, async () => {
        const body = await this.askClone(site);
        if (body) this.panel.accept(await this.panel.api.cp("POST", `${this.sitePath(site.name)}/clone`, body));
      }),
      site.role === "staging" ? this.driftButton(site) : null,
      button("promote", "Promote", `Promote ${site.name} to ${site.parent}`, () => this.promote(site), { class: "danger" }),
      button("rollback", "Roll back", `Roll back the last promotion of ${site.name}`, () => this.rollback(site), { class: "danger" }),
    ];
  }

  // Drift is a read: anyone who sees the staging site may open it.
  driftButton(site) {
    const open = this.drifts.has(site.name);
    return h("button", { type: "button", "data-key": "drift", "aria-expanded": String(open), "aria-label": `Drift of ${site.parent} since ${site.name} was cloned`,
      onclick: async (e) => {
        const target = e.currentTarget;
        if (this.drifts.has(site.name)) { this.drifts.delete(site.name); this.panel.updateRow(site.name); return; }
        target.disabled = true;
        try {
          this.drifts.set(site.name, await this.panel.api.cp("GET", `${this.sitePath(site.name)}/drift`));
          this.panel.showError(null);
          this.panel.updateRow(site.name);
        } catch (error) {
          target.disabled = false;
          if (error.status === 401) this.panel.onUnauthorized(); else this.panel.showError(error);
        }
      } }, open ? "Hide drift" : "Drift");
  }

  // The open drift report of a staging row, in the sentences the API wrote.
  driftPanel(site) {
    const drift = this.drifts.get(site.name);
    if (!drift) return null;
    return h("div", { class: "drift", role: "region", "aria-label": `Drift of ${drift.parent}` }, this.driftText(drift));
  }

  driftText(drift) {
    const since = new Date(drift.since).toLocaleString();
    if (!drift.changed) return h("p", { class: "muted" }, `${drift.parent} has not changed since the clone (${since}).`);
    return h("div", {}, h("p", {}, `${drift.parent} changed since the clone (${since}):`),
      h("ul", {}, ...drift.summary.map((sentence) => h("li", {}, sentence))));
  }

  async promote(site) {
    const drift = await this.panel.api.cp("GET", `${this.sitePath(site.name)}/drift`);
    let refused = null;
    for (;;) {
      const body = await this.askPromote(site, drift, refused);
      if (!body) return;
      try {
        const accepted = await this.panel.api.cp("POST", `${this.sitePath(site.name)}/promote`, body);
        this.panel.started(site.parent, accepted.operation);
        this.panel.announce(`Promoting ${site.name} to ${site.parent}…`);
        return;
      } catch (error) {
        if (error.status !== 409) throw error;
        refused = error; // production changed where this would write: ask again, offering Overwrite
      }
    }
  }

  async rollback(site) {
    const question = `The database and wp-content of ${site.name} are replaced with its pre-promote backup: every change since the last promotion is lost. A backup of the site as it is now is taken first.`;
    if (!(await this.dialog(`Roll back ${site.name}?`, question, `Roll back ${site.name}`))) return;
    const accepted = await this.panel.api.cp("POST", `${this.sitePath(site.name)}/rollback`);
    this.panel.started(site.name, accepted.operation);
    this.panel.announce(`Rolling back ${site.name}…`);
  }

  // The new staging site's name and basic auth, or null if cancelled.
  async askClone(site) {
    const name = h("input", { name: "name", value: `${site.name}-staging`, required: true, autocomplete: "off" });
    const auth = h("input", { type: "checkbox", name: "basic_auth" });
    const text = `A new site with its own database, files and address, copied from ${site.name} with its addresses rewritten, hidden from search engines.`;
    const fields = [h("label", {}, "Staging site's name ", name), h("label", { class: "check" }, auth, " Behind HTTP basic auth")];
    const ok = await this.dialog(`Clone ${site.name} to staging?`, text, "Clone", fields);
    return ok ? { name: name.value.trim(), basic_auth: auth.checked } : null;
  }

  // The promotion's body, or null if cancelled. `refused`: the API's 409, whose drift is shown.
  async askPromote(site, drift, refused) {
    const radios = SCOPES.map((s) => h("input", { type: "radio", name: "scope", value: s.value, checked: s.value === "all" }));
    const tables = drift.tables.map((t) => h("input", { type: "checkbox", name: "table", value: t.table, checked: !t.changed }));
    const tableBox = h("fieldset", { class: "tables", hidden: true }, h("legend", {}, "Tables (none checked: every table)"),
      ...drift.tables.map((t, i) => h("label", { class: "check" }, tables[i], ` ${t.table}`, t.changed ? h("span", { class: "muted" }, ` (changed on production: ${t.summary || "changed"})`) : "")));
    for (const radio of radios) radio.addEventListener("change", () => { tableBox.hidden = !radios[1].checked; });
    const scope = h("fieldset", { class: "scope" }, h("legend", {}, "What to copy"),
      ...SCOPES.map((s, i) => h("label", { class: "check" }, radios[i], ` ${s.label}`)));
    const fields = [scope, tableBox, h("div", { class: "drift" }, this.driftText((refused && refused.problem.drift) || drift))];
    const force = h("input", { type: "checkbox", name: "force" });
    if (refused) {
      fields.unshift(h("p", { class: "error", role: "alert" }, refused.message));
      fields.push(h("label", { class: "check" }, force, ` Overwrite what changed on ${site.parent}`));
    }
    const text = `Copies staging site ${site.name} onto production site ${site.parent}. A backup of ${site.parent} is taken first (Roll back puts it back).`;
    if (!(await this.dialog(`Promote ${site.name} to ${site.parent}?`, text, "Promote", fields))) return null;
    const chosen = radios.find((r) => r.checked).value;
    const picked = tables.filter((t) => t.checked).map((t) => t.value);
    return { scope: chosen, tables: chosen === "database" && picked.length ? picked : null, force: force.checked };
  }

  // A modal with the question and its fields; true if confirmed. Cancel has the focus.
  dialog(title, text, confirmText, fields = []) {
    return confirmDialog({ id: "confirm-staging", className: "confirm staging", title, text, confirmText, fields });
  }
}
