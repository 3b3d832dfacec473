// <aipress-chat>: the AIPress chat widget, a web component with no build step.
//
//   <script type="module" src="https://chat.example.com/widget.js"></script>
//   <aipress-chat data-api-base="https://chat.example.com" data-auth="session"></aipress-chat>
//
// data-api-base: the chatbot service (default: where this script came from).
// data-auth: "session" (a token kept in sessionStorage by the sign-in page, the default)
// or "attribute" (the host page sets data-token and keeps it fresh).

import { Api, claims, getToken, openWpAdmin } from "./webchat/api.js";
import { barChart, formatMoney } from "./webchat/chart.js";
import { renderMarkdown } from "./webchat/markdown.js";
import { h } from "./webchat/dom.js";

const SCRIPT_BASE = new URL(".", import.meta.url).href.replace(/\/$/, "");
// The tools' labels come from the chat service's registry (GET /v1/tools), fetched once.
let toolLabels = null;
// So do the operation words (GET /v1/vocabulary): what a step becomes on each step event.
let vocabulary = null;
function loadVocabulary(base) {
  vocabulary ??= fetch(`${base}/v1/vocabulary`)
    .then((response) => (response.ok ? response.json() : {}))
    .catch(() => ({}));
  return vocabulary;
}
function loadToolLabels(base) {
  toolLabels ??= fetch(`${base}/v1/tools`)
    .then((response) => (response.ok ? response.json() : []))
    .then((tools) => new Map(tools.map((tool) => [tool.name, tool.label])))
    .catch(() => new Map());
  return toolLabels;
}

// "Creating site {name}" with the call's arguments; the tool's name until labels arrive.
function toolLabel(labels, name, args) {
  const label = labels?.get(name);
  return label ? label.replace(/\{(\w+)\}/g, (_, key) => String(args[key] ?? "")) : name;
}

class AipressChat extends HTMLElement {
  connectedCallback() {
    if (this.shadowRoot) return;
    this.base = (this.dataset.apiBase || SCRIPT_BASE).replace(/\/$/, "");
    this.api = new Api(this.base, () => this.token());
    loadToolLabels(this.base).then((labels) => { this.toolLabels = labels; });
    this.stepStates = {};
    loadVocabulary(this.base).then((words) => { this.stepStates = words.step_event_states || {}; });
    this.thread = null;
    this.retry = 0;
    this.busy = false;
    this.steps = new Map();
    const root = this.attachShadow({ mode: "open" });
    root.append(h("link", { rel: "stylesheet", href: `${this.base}/webchat/widget.css` }));
    this.status = h("span", { class: "status", role: "status", "aria-live": "polite" }, "connecting…");
    this.log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" });
    this.input = h("textarea", {
      rows: "2", placeholder: "Ask AIPress… (Enter to send, Shift+Enter for a new line)",
      "aria-label": "Message", maxlength: "4000",
      onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); this.submit(); } },
    });
    this.sendButton = h("button", { type: "submit", class: "send" }, "Send");
    const form = h("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      this.input, this.sendButton);
    root.append(h("section", { class: "chat", "aria-label": this.dataset.title || "AIPress chat" },
      h("header", {}, h("strong", {}, this.dataset.title || "AIPress"), this.status), this.log, form));
    this.threadKey = `aipress.thread.${(claims(this.token()) || {}).sub || "anon"}`;
    this.thread = sessionStorage.getItem(this.threadKey);
    if (this.thread) this.restore();
    this.connect();
  }

  // A new conversation (the dashboard calls this when the tenant changes: a thread acts for
  // one tenant).
  resetThread() {
    this.thread = null;
    sessionStorage.removeItem(this.threadKey);
    this.log.replaceChildren();
    this.awaitingAnswer = false;
    this.openCard = null;
  }

  // A typed "yes" or "no" answered the waiting confirmation: its card takes no second answer.
  closeCard(text) {
    if (!this.openCard) return;
    this.openCard.close(text);
    this.openCard = null;
    this.awaitingAnswer = false;
  }

  disconnectedCallback() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }

  token() {
    return this.dataset.auth === "attribute" ? this.dataset.token : getToken();
  }

  setStatus(text, state) {
    this.status.textContent = text;
    this.status.dataset.state = state;
  }

  connect() {
    const url = this.base.replace(/^http/, "ws") + "/v1/chat/ws";
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.token() || "" }));
    ws.onmessage = (message) => this.handle(JSON.parse(message.data));
    ws.onclose = () => {
      this.ready = false;
      if (this.closed || this.ws !== ws) return;
      const delay = Math.min(8000, 500 * 2 ** this.retry++);
      this.setStatus("reconnecting…", "offline");
      setTimeout(() => this.connect(), delay);
    };
  }

  // After a reconnect (or a page load) the thread is read back over HTTP.
  async restore() {
    try {
      const thread = await this.api.call("GET", `/v1/chat/${encodeURIComponent(this.thread)}`);
      this.log.replaceChildren();
      this.openCard = null;
      for (const message of thread.messages) {
        if (message.role === "user") this.bubble("user").textContent = message.content;
        if (message.role === "assistant" && message.content) this.bubble("assistant").append(renderMarkdown(message.content));
      }
      if (thread.interrupt) this.confirmCard(thread.interrupt);
      this.scroll();
    } catch (error) {
      if (error.status === 404) { this.thread = null; sessionStorage.removeItem(this.threadKey); }
    }
  }

  submit() {
    const text = this.input.value.trim();
    if (!text || this.busy) return;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.ready) {
      this.queued = true; // sent as soon as the socket is back
      this.setStatus("reconnecting… your message will be sent", "offline");
      return;
    }
    this.queued = false;
    this.input.value = "";
    this.bubble("user").textContent = text;
    this.setBusy(true);
    const frame = { type: "message", text };
    if (this.thread) frame.thread_id = this.thread;
    if (this.dataset.tenant) frame.tenant_id = this.dataset.tenant;
    this.ws.send(JSON.stringify(frame));
    this.scroll();
  }

  setBusy(busy) {
    this.busy = busy;
    this.sendButton.disabled = busy;
    this.log.setAttribute("aria-busy", String(busy));
  }

  bubble(role) {
    const node = h("div", { class: `msg ${role}` });
    this.log.append(node);
    return node;
  }

  scroll() {
    this.log.scrollTop = this.log.scrollHeight;
  }

  handle(event) {
    switch (event.type) {
      case "ready":
        this.retry = 0;
        this.ready = true;
        this.setStatus(`${event.sub} · ${event.role}`, "online");
        if (this.wasOffline && this.thread) this.restore().then(() => { if (this.queued) this.submit(); });
        else if (this.queued) this.submit();
        this.wasOffline = true;
        break;
      case "thread":
        this.answering = null; // the answer was taken: the turn runs
        this.thread = event.thread_id;
        sessionStorage.setItem(this.threadKey, this.thread);
        this.current = null;
        break;
      case "token":
        if (!this.current) this.current = this.bubble("assistant streaming");
        this.current.append(event.text);
        break;
      // The events that one method each draws.
      case "message": this.finishMessage(event.message); break;
      case "tool_start": this.toolStart(event); break;
      case "progress": this.progress(event); break;
      case "tool_end": this.toolEnd(event); break;
      case "interrupt": this.confirmCard(event); break;
      case "answered": this.closeCard(event.approve ? "Confirmed." : "Cancelled."); break;
      case "error":
        this.bubble("error").textContent = `${event.detail}`;
        if (this.answering) { this.answering(); this.answering = null; }
        if (event.status === 401) this.setStatus("signed out", "offline");
        this.setBusy(false);
        break;
      case "done":
        this.current = null;
        this.setBusy(false);
        if (!this.awaitingAnswer) this.input.focus();  // a confirmation keeps the focus
        break;
    }
    this.scroll();
  }

  finishMessage(message) {
    const node = this.current;
    this.current = null;
    if (!message.content) { if (node) node.remove(); return; }
    const target = node || this.bubble("assistant");
    target.classList.remove("streaming");
    target.replaceChildren(renderMarkdown(message.content));
  }

  toolStart(event) {
    const label = toolLabel(this.toolLabels, event.name, event.args || {});
    const sub = h("ul", { class: "substeps", "aria-label": "Progress" });
    const node = h("div", { class: "step running", role: "group", "aria-label": label },
      h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { class: "label" }, label), sub);
    node.sub = sub;
    node.items = new Map();
    this.steps.set(event.id, node);
    this.lastStep = node;
    this.log.append(node);
  }

  progress(event) {
    const node = this.lastStep;
    if (!node || !event.step) return;
    let item = node.items.get(event.step);
    if (!item) {
      item = h("li", { class: "running" }, event.step);
      node.items.set(event.step, item);
      node.sub.append(item);
    }
    item.className = this.stepStates[event.event] || item.className;
    item.title = event.message || "";
  }

  toolEnd(event) {
    const node = this.steps.get(event.id);
    if (!node) return;
    const ok = event.status === "ok";
    node.className = `step ${ok ? "done" : event.status === "cancelled" ? "cancelled" : "failed"}`;
    node.querySelector(".spinner").textContent = ok ? "✓" : "✗";
    if (!ok && event.error) node.append(h("div", { class: "detail" }, event.error));
    const data = event.data || {};
    if (ok && event.name === "create_site" && data.url) node.append(this.siteCard(data));
    if (ok && event.name === "clone_site" && data.url) node.append(this.stagingCard(data));
    if (ok && event.name === "get_billing") node.append(this.costChart(data));
    if (ok && event.name === "billing_summary") node.append(this.summaryChart(data));
  }

  siteCard(site) {
    const reveal = h("button", { type: "button", class: "reveal" }, "Reveal admin password");
    const out = h("div", { class: "secret", "aria-live": "polite" });
    reveal.addEventListener("click", async () => {
      reveal.disabled = true;
      try {
        const path = `/v1/tenants/${encodeURIComponent(site.tenant_id)}/sites/${encodeURIComponent(site.name)}/admin-credentials/reveal`;
        const credentials = await this.api.cp("POST", path);
        const code = h("code", { class: "password" }, credentials.password);
        const hide = h("button", { type: "button", onclick: () => out.replaceChildren("Password hidden. Reveal it again from the dashboard.") }, "Hide");
        out.replaceChildren(`User ${credentials.username}: `, code, " ", hide);
        reveal.remove();
      } catch (error) {
        out.textContent = `Could not reveal: ${error.message}`;
        reveal.disabled = false;
      }
    });
    const wpAdmin = h("button", { type: "button", class: "reveal" }, "Open wp-admin");
    wpAdmin.addEventListener("click", async () => {
      wpAdmin.disabled = true;
      try {
        await openWpAdmin(this.api, site.tenant_id, site.name);
        out.textContent = "wp-admin opened in a new tab (the link works once, for 60 seconds).";
      } catch (error) {
        out.textContent = `Could not open wp-admin: ${error.message}`;
      } finally {
        wpAdmin.disabled = false;
      }
    });
    const link = h("a", { href: site.url, target: "_blank", rel: "noopener noreferrer" }, site.url);
    return h("div", { class: "card" }, h("div", {}, "Open ", link), wpAdmin, " ", reveal, out);
  }

  // A new staging site: its address, and its basic-auth credentials on request (from the
  // vault, shown here only, never in chat).
  stagingCard(site) {
    const link = h("a", { href: site.url, target: "_blank", rel: "noopener noreferrer" }, site.url);
    const card = h("div", { class: "card" }, h("div", {}, `Staging copy of ${site.production}: `, link));
    if (!site.basic_auth) return card;
    const out = h("div", { class: "secret", "aria-live": "polite" });
    const reveal = h("button", { type: "button", class: "reveal" }, "Reveal basic-auth login");
    reveal.addEventListener("click", async () => {
      reveal.disabled = true;
      try {
        const path = `/v1/tenants/${encodeURIComponent(site.tenant_id)}/sites/${encodeURIComponent(site.name)}/basic-auth/reveal`;
        const credentials = await this.api.cp("POST", path);
        out.replaceChildren(`User ${credentials.username}: `, h("code", { class: "password" }, credentials.password));
        reveal.remove();
      } catch (error) {
        out.textContent = `Could not reveal: ${error.message}`;
        reveal.disabled = false;
      }
    });
    card.append(reveal, out);
    return card;
  }

  costChart(report) {
    const totals = report.totals || [];
    if (!totals.length) return h("div", { class: "card" }, "No costs in this period.");
    const currency = totals[0].currency;
    const points = (report.lines || []).filter((l) => l.currency === currency)
      .map((l) => ({ label: l.key, value: l.net }));
    return h("figure", { class: "card chart" }, barChart(points, { currency, title: `Costs by ${report.group_by}` }),
      h("figcaption", {}, totals.map((t) => formatMoney(t.net, t.currency)).join(" + ")));
  }

  summaryChart(report) {
    const currency = (report.totals || [{}])[0].currency || "USD";
    const points = (report.tenants || []).filter((t) => t.currency === currency)
      .map((t) => ({ label: t.tenant_id, value: t.net }));
    return h("figure", { class: "card chart" }, barChart(points, { currency, title: "Costs by tenant" }));
  }

  // An import's files: one archive, or a dump with an optional wp-content archive. The
  // widget uploads them itself, straight to the import endpoint (the card's upload path),
  // with the user's token; the chat only learns the operation that started.
  fileFields(action) {
    const id = `import-${action.tool_call_id}`;
    const main = h("input", { id, type: "file", accept: ".tar.gz,.tgz,.sql,.sql.gz,.gz", required: "" });
    const content = h("input", { id: `${id}-content`, type: "file", accept: ".tar.gz,.tgz,.gz" });
    const progress = h("progress", { max: "100", value: "0", hidden: "", "aria-label": `Upload to ${action.site}` });
    const node = h("div", { class: "upload" },
      h("label", { for: main.id }, "Export: a .tar.gz with database.sql and wp-content/, or a .sql / .sql.gz dump"), main,
      h("label", { for: content.id }, "wp-content .tar.gz (with a dump only, optional)"), content, progress);
    return { node, main, content, progress, action };
  }

  async uploadImport(upload, note) {
    const file = upload.main.files[0];
    const form = new FormData();
    for (const [key, value] of Object.entries(upload.action.upload.fields)) form.append(key, value);
    const dump = /\.sql(\.gz)?$/i.test(file.name);
    form.append(dump ? "dump" : "archive", file, file.name);
    if (dump && upload.content.files[0]) form.append("content", upload.content.files[0], upload.content.files[0].name);
    upload.progress.hidden = false;
    const accepted = await this.api.upload(upload.action.upload.path, form, (sent, total) => {
      upload.progress.value = Math.round((100 * sent) / total);
      note.textContent = `Uploading… ${upload.progress.value}%`;
    });
    return accepted.operation.id;
  }

  confirmCard(interrupt) {
    // A reminder (something typed that did not answer it) repeats the interrupt: the card
    // already shown stays the one to answer.
    if (this.openCard && this.openCard.id === interrupt.id) return;
    // A secret's value is typed here, in a password field: the resume frame carries it to
    // the chat service, which sends it to the control plane before the agent resumes. It is
    // never part of a message, so neither the model nor the thread's history holds it.
    const fields = new Map();
    const uploads = new Map();
    const questions = interrupt.actions.map((a) => {
      const question = h("p", {}, a.question);
      if (a.input === "file") {
        const upload = this.fileFields(a);
        uploads.set(a.tool_call_id, upload);
        return h("div", {}, question, upload.node);
      }
      if (a.input !== "secret") return question;
      const id = `secret-${a.tool_call_id}`;
      const field = h("input", { id, type: "password", autocomplete: "new-password", spellcheck: "false", required: "" });
      fields.set(a.tool_call_id, field);
      return h("div", {}, question, h("label", { for: id }, `Value of ${a.variable}`), field);
    });
    const card = h("div", { class: "confirm", role: "alertdialog", "aria-label": "Confirmation needed" }, ...questions);
    const note = h("p", { class: "answer", role: "status" });
    // The message box stays usable: a typed "yes" or "no" answers the card as its buttons do.
    this.awaitingAnswer = true;
    const controls = () => card.querySelectorAll("button, input");
    const shown = {
      id: interrupt.id,
      close: (text) => { for (const control of controls()) control.disabled = true; note.textContent = text; },
    };
    this.openCard = shown;
    const answer = async (approve) => {
      const secrets = {};
      const started = {};
      if (approve) {
        for (const [id, field] of fields) {
          if (!field.value) { note.textContent = "Type the value first."; field.focus(); return; }
          secrets[id] = field.value;
        }
        for (const upload of uploads.values()) {
          if (!upload.main.files.length) { note.textContent = "Choose the export file first."; upload.main.focus(); return; }
        }
      }
      for (const control of controls()) control.disabled = true;
      if (approve) {
        for (const [id, upload] of uploads) {
          try {
            started[id] = await this.uploadImport(upload, note);
          } catch (error) {
            // Refused (too large, not an export, not allowed): nothing started; the card stays.
            for (const control of controls()) control.disabled = false;
            upload.progress.hidden = true;
            note.textContent = `Nothing changed: ${error.message}`;
            upload.main.focus();
            return;
          }
        }
      }
      this.awaitingAnswer = false;
      this.openCard = null;
      note.textContent = approve ? (uploads.size ? "Uploaded; importing." : "Confirmed.") : "Cancelled.";
      this.setBusy(true);
      // Answered here; if the control plane refuses a value, the error frame reopens the card.
      this.answering = () => {
        this.awaitingAnswer = true;
        this.openCard = shown;
        for (const control of controls()) control.disabled = false;
        note.textContent = "Nothing changed: correct the value and confirm again, or cancel.";
        (fields.values().next().value || cancel).focus();
      };
      const frame = { type: "resume", thread_id: interrupt.thread_id, approve };
      if (approve && fields.size) frame.secrets = secrets;
      if (approve && uploads.size) frame.uploads = started;
      this.ws.send(JSON.stringify(frame));
      for (const field of fields.values()) field.value = "";
    };
    const confirm = h("button", { type: "button", class: "danger", onclick: () => answer(true) }, "Confirm");
    const cancel = h("button", { type: "button", onclick: () => answer(false) }, "Cancel");
    card.append(h("div", { class: "buttons" }, confirm, cancel), note);
    this.log.append(card);
    (fields.values().next().value || cancel).focus();
  }
}

if (!customElements.get("aipress-chat")) customElements.define("aipress-chat", AipressChat);
