// Sign-in shared by both pages: one form, one token request, the token kept in memory only
// (never in localStorage, sessionStorage, a cookie or the URL), and its expiry shown.

/** Readable words for the token endpoint's RFC 6749 errors. */
const TOKEN_ERRORS = {
  invalid_client: "The client id, secret, app key or enterprise is wrong (the service does not say which).",
  invalid_scope: "This client does not hold the scope the page asks for.",
  invalid_request: "The request was refused as malformed.",
  unsupported_grant_type: "The token endpoint refused the grant type.",
};

/** Asks `/oauth/v1/tokens` for a token; resolves to a session or rejects with a readable Error. */
export async function requestToken({ clientId, secret, appKey, enterprise, scope }) {
  const body = new URLSearchParams({ grant_type: "client_credentials" });
  if (scope) body.set("scope", scope);
  let res;
  try {
    res = await fetch("/oauth/v1/tokens", {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: "Basic " + btoa(`${clientId}:${secret}`),
        "x-app-key": appKey,
        enterpriseId: enterprise,
      },
      body,
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new Error("The service could not be reached. Is it running?");
  }
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 429) {
      const wait = res.headers.get("retry-after");
      throw new Error(`Too many failed sign-ins for this client: try again in ${wait ?? "a few"} seconds.`);
    }
    const words = TOKEN_ERRORS[answer.error] ?? answer.error_description ?? "The token endpoint refused the request.";
    throw new Error(`${words} (${res.status} ${answer.error ?? ""})`.replace(" )", ")"));
  }
  const claims = decodeClaims(answer.access_token);
  return {
    token: answer.access_token,
    clientId,
    appKey,
    enterprise,
    scope: answer.scope,
    chains: (claims.chains ?? []).map((g) => g.chain),
    expiresAt: Date.now() + answer.expires_in * 1000,
  };
}

/** The JWT's claims, for the page's own display (the server verifies every use). */
function decodeClaims(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload));
}

/** "expires at 20:15:03 (in 59 min)" or "expired". */
export function describeExpiry(expiresAt, now = Date.now()) {
  if (expiresAt <= now) return "token expired: sign in again";
  const minutes = Math.floor((expiresAt - now) / 60000);
  const at = new Date(expiresAt).toLocaleTimeString([], { hour12: false });
  return `token expires at ${at} (in ${minutes < 1 ? "under a minute" : `${minutes} min`})`;
}

/**
 * Mounts the sign-in form in `container` and the session line in `status`. `onSession` is
 * called with a session after a sign-in and with null after a sign-out.
 */
export function mountSignIn(container, status, { scope, defaults, purpose, onSession }) {
  container.innerHTML = `
    <form class="signin" novalidate>
      <h2 id="signin-title">Sign in</h2>
      <p class="hint">${purpose}</p>
      <div class="fields">
        <label>Client id <input name="clientId" autocomplete="username" required></label>
        <label>Client secret <input name="secret" type="password" autocomplete="current-password" required></label>
        <label>App key <input name="appKey" autocomplete="off" required></label>
        <label>Enterprise <input name="enterprise" autocomplete="off" required></label>
      </div>
      <button type="submit">Get a token</button>
      <p class="error" role="alert" aria-live="assertive"></p>
    </form>`;
  const form = container.querySelector("form");
  form.setAttribute("aria-labelledby", "signin-title");
  for (const [name, value] of Object.entries(defaults ?? {})) form.elements[name].value = value;
  const error = form.querySelector(".error");
  let session = null;
  let ticker = 0;

  const showStatus = () => {
    if (!session) {
      status.textContent = "";
      return;
    }
    status.innerHTML = "";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `${session.clientId} · ${session.enterprise} · `;
    const expiry = document.createElement("span");
    expiry.className = "expiry";
    expiry.textContent = describeExpiry(session.expiresAt);
    const out = document.createElement("button");
    out.type = "button";
    out.className = "signout";
    out.textContent = "Sign out";
    out.addEventListener("click", signOut);
    status.append(who, expiry, out);
  };
  const signOut = () => {
    session = null;
    clearInterval(ticker);
    showStatus();
    container.hidden = false;
    onSession(null);
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    const fields = Object.fromEntries(new FormData(form));
    const missing = Object.entries(fields).filter(([, v]) => !String(v).trim()).map(([k]) => form.elements[k].labels[0].firstChild.textContent.trim());
    if (missing.length) {
      error.textContent = `Fill in: ${missing.join(", ")}.`;
      return;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      session = await requestToken({ ...fields, scope });
      form.elements.secret.value = "";
      container.hidden = true;
      showStatus();
      ticker = setInterval(showStatus, 15000);
      onSession(session);
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  return { signOut, current: () => session };
}
