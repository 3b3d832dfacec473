// The browser's side of auth and the API: a bearer token in sessionStorage, and calls to
// the chatbot service, which forwards /api/v1/* to the control plane with that token.

export const TOKEN_KEY = "aipress.token";

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// The token's claims, for display only: the services verify the signature, not the browser.
export function claims(token = getToken()) {
  if (!token) return null;
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return null;
  }
}

// A refused call: its status, the problem's detail, and for a 422 the problem's `errors`
// ([{field: "body.name", message}]) so that a form can show each next to its field.
export class ApiError extends Error {
  constructor(status, detail, problem = {}) {
    super(detail);
    this.status = status;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.problem = problem; // its other members (a refused promotion's `drift`)
  }
}

export class Api {
  // token: where the bearer token comes from (the widget's data-auth decides).
  constructor(base = location.origin, token = getToken) {
    this.base = base.replace(/\/$/, "");
    this.token = token;
  }

  async call(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token() || ""}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, data.detail || response.statusText, data);
    return data;
  }

  // The control plane, through the chatbot's thin proxy.
  cp(method, path, body) {
    return this.call(method, `/api${path}`, body);
  }

  // A multipart POST to the control plane (a site import), with the caller's token; fetch
  // cannot report an upload's progress, XMLHttpRequest can: onProgress(sent, total).
  upload(path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", `${this.base}/api${path}`);
      request.setRequestHeader("Authorization", `Bearer ${this.token() || ""}`);
      request.upload.onprogress = (event) => { if (event.lengthComputable) onProgress(event.loaded, event.total); };
      request.onload = () => {
        let data = {};
        try { data = JSON.parse(request.responseText || "{}"); } catch { data = {}; }
        if (request.status >= 200 && request.status < 300) resolve(data);
        else reject(new ApiError(request.status, data.detail || request.statusText || "the upload was refused", data));
      };
      request.onerror = () => reject(new ApiError(0, "the upload broke off: check the connection and try again"));
      request.send(form);
    });
  }
}

// One-click wp-admin: the tab opens on the click itself (pop-up blockers allow that), then
// goes to the single-use link, which is shown nowhere and never reaches the chat or the model.
export async function openWpAdmin(api, tenantId, siteName) {
  const tab = window.open("", "_blank");
  if (!tab) throw new ApiError(0, "The browser blocked the new tab: allow pop-ups for this page.");
  try {
    const path = `/v1/tenants/${encodeURIComponent(tenantId)}/sites/${encodeURIComponent(siteName)}/admin-login`;
    const login = await api.cp("POST", path);
    tab.opener = null;
    tab.location.replace(login.url);
  } catch (error) {
    tab.close();
    throw error;
  }
}
