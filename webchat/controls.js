// The panels' shared controls: a button that runs an action, and a confirmation dialog.

import { h } from "./dom.js";

// actionButton(panel, key, text, label, run, extra): a button (data-key=key) that runs
// run(button) with itself disabled until it is done. A success clears the page's alert
// (panel.showError(null)); a failure shows in it, and a refused token calls
// panel.onUnauthorized().
export function actionButton(panel, key, text, label, run, extra = {}) {
  return h("button", { type: "button", "data-key": key, "aria-label": label, ...extra, onclick: async (e) => {
    const target = e.currentTarget;
    target.disabled = true;
    try {
      await run(target);
      panel.showError(null);
    } catch (error) {
      if (error.status === 401) panel.onUnauthorized();
      else panel.showError(error);
    } finally {
      target.disabled = false;
    }
  } }, text);
}

// confirmDialog({ id, title, text, confirmText, fields, className }): a modal that asks the
// question (its title and text, with `id`-title and `id`-text as ids) above its fields;
// resolves true if confirmed. Cancel has the focus; Escape cancels.

export function confirmDialog({ id, title, text, confirmText, fields = [], className = "confirm" }) {
  return new Promise((resolve) => {
    const heading = h("h3", { id: `${id}-title` }, title);
    const description = h("p", { id: `${id}-text` }, text);
    const dialog = h("dialog", { class: className, "aria-labelledby": heading.id, "aria-describedby": description.id }, heading, description, ...fields);
    const confirm = h("button", { type: "button", class: "danger", onclick: () => dialog.close("confirm") }, confirmText);
    const cancel = h("button", { type: "button", onclick: () => dialog.close("cancel") }, "Cancel");
    dialog.append(h("div", { class: "buttons" }, confirm, cancel));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}
