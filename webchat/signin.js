// Sign-in: the embedded default lists its demo users and mints local tokens for a browser
// that holds the machine's sign-in key; gcp mode signs in with Firebase Auth (Google, Apple
// or an e-mail link) and keeps the ID token.

import { setToken } from "./api.js";

const choices = document.getElementById("choices");
const mode = document.getElementById("mode");
const error = document.getElementById("error");

function button(label, detail, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.setAttribute("role", "listitem");
  const strong = document.createElement("strong");
  strong.textContent = label;
  const small = document.createElement("div");
  small.className = "muted";
  small.textContent = detail;
  b.append(strong, small);
  b.addEventListener("click", onClick);
  return b;
}

// An OAuth client's authorization request (/oauth/authorize sent the browser here): after
// sign-in the user consents or declines, and the browser goes back to the client.
const oauthRequest = new URLSearchParams(location.search).get("oauth");

async function signedIn(token) {
  if (!oauthRequest) { setToken(token); location.href = "/dashboard"; return; }
  const url = `/oauth/requests/${encodeURIComponent(oauthRequest)}`;
  const described = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
  const request = await described.json();
  if (!described.ok) { error.textContent = request.detail; return; }
  choices.replaceChildren();
  const granted = request.granted.length
    ? `It will get ${request.granted.join(", ")}.`
    : "Your role grants none of what it asks for: allowing sends it back refused.";
  const dropped = request.dropped.length
    ? ` Not granted, because your role (${request.role}) lacks them: ${request.dropped.join(", ")}.`
    : "";
  mode.textContent = `${request.client_name} (${request.client_id}) asks to act as you with ` +
    `${request.scopes.join(", ")}. ${granted}${dropped} It gets its answer at ${request.redirect_host}.`;
  const answer = async (approve) => {
    const response = await fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ approve }),
    });
    const body = await response.json();
    if (!response.ok) { error.textContent = body.detail; return; }
    location.href = body.redirect;
  };
  choices.append(button("Allow", "Give this client access", () => answer(true)),
    button("Deny", "Send it away", () => answer(false)));
}

// The machine's sign-in key arrives once in the URL fragment (never sent to a server, so
// never in a log); it is kept in this browser and sent with each local sign-in call.
const SIGN_IN_KEY = "aipress.signInKey";

// Kept before anything is awaited: a browser that leaves the page at once still keeps it.
const keyFromUrl = new URLSearchParams(location.hash.slice(1)).get("key");
if (keyFromUrl) {
  localStorage.setItem(SIGN_IN_KEY, keyFromUrl);
  history.replaceState(null, "", location.pathname + location.search);  // out of the address bar
}

async function local() {
  mode.textContent = "Embedded default: choose a local user (tokens are signed on this machine).";
  const key = localStorage.getItem(SIGN_IN_KEY);
  const headers = key ? { "X-AIPress-Sign-In-Key": key } : {};
  const listed = await fetch("/auth/local/users", { headers });
  if (!listed.ok) {
    if (listed.status === 403) localStorage.removeItem(SIGN_IN_KEY);  // rotated: ask for the new URL
    mode.textContent = "Open the sign-in URL that `aipress up` printed (or run `aipress signin-url` as root).";
    error.textContent = (await listed.json()).detail;
    return;
  }
  const users = await listed.json();
  for (const user of users) {
    const scope = user.role === "admin" ? "all tenants" : `tenant ${user.tenants.join(", ")}`;
    choices.append(button(user.uid, `${user.role} · ${scope} · ${user.email || ""}`, async () => {
      const response = await fetch("/auth/local/token", {
        method: "POST", headers: { "Content-Type": "application/json", ...headers },
        body: JSON.stringify({ uid: user.uid }),
      });
      const body = await response.json();
      if (!response.ok) { error.textContent = body.detail; return; }
      await signedIn(body.token);
    }));
  }
}

async function firebase(config) {
  mode.textContent = "Sign in with your account.";
  const base = "https://www.gstatic.com/firebasejs/10.14.1";
  const { initializeApp } = await import(`${base}/firebase-app.js`);
  const authModule = await import(`${base}/firebase-auth.js`);
  const app = initializeApp(config.firebase);
  const auth = authModule.getAuth(app);
  const done = async (credential) => signedIn(await credential.user.getIdToken());
  if (authModule.isSignInWithEmailLink(auth, location.href)) {
    const email = localStorage.getItem("aipress.emailForSignIn") || prompt("Your e-mail, to finish signing in");
    await done(await authModule.signInWithEmailLink(auth, email, location.href));
    return;
  }
  const providers = { google: () => new authModule.GoogleAuthProvider(), apple: () => new authModule.OAuthProvider("apple.com") };
  for (const name of config.providers) {
    if (name === "email") {
      choices.append(button("E-mail link", "We send you a sign-in link", async () => {
        const email = prompt("Your e-mail");
        if (!email) return;
        await authModule.sendSignInLinkToEmail(auth, email, { url: location.href, handleCodeInApp: true });
        localStorage.setItem("aipress.emailForSignIn", email);
        mode.textContent = `Check ${email} for the sign-in link.`;
      }));
    } else if (providers[name]) {
      choices.append(button(`Continue with ${name[0].toUpperCase()}${name.slice(1)}`, "",
        async () => done(await authModule.signInWithPopup(auth, providers[name]()))));
    }
  }
}

try {
  const config = await (await fetch("/auth/config")).json();
  await (config.mode === "local" ? local() : firebase(config));
} catch (e) {
  error.textContent = `Sign-in is unavailable: ${e.message}`;
}
