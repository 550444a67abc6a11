// Small pieces both pages use.

/** What each close code of `/subscriptions` means to the person looking at the page. */
const CLOSE_WORDS = {
  1009: "An event was larger than the stream's frame limit.",
  1011: "The service had an internal error.",
  1012: "The service restarted (a deploy). Run the subscription again: it resumes where it stopped.",
  4400: "The service refused a message as invalid.",
  4401: "The token is invalid or has expired: sign in again.",
  4403: "This token may not stream: it needs the scope urn:pms:events and the same app key as the one signed in with.",
  4406: "The socket was opened without the graphql-transport-ws subprotocol.",
  4408: "The connection was not initialised in time.",
  4409: "An operation with the same id is already running.",
  4413: "This page read events too slowly and was disconnected. Run the subscription again to resume from its last offset.",
  4429: "Too many connection_init messages on one socket.",
  4500: "The service had an internal error.",
};

/**
 * Words for a socket's close (a CloseEvent, or anything with `code` and `reason`), or null
 * for a normal close. The server's own reason is kept: it is specific.
 */
export function describeClose(event) {
  if (!event || typeof event.code !== "number") return null;
  if (event.code === 1000 || event.code === 1001) return null;
  const words = CLOSE_WORDS[event.code] ?? "The connection to the service closed.";
  const reason = event.reason ? ` Server: “${event.reason}”` : "";
  return `${words} (close ${event.code})${reason}`;
}

/** The demo credentials, shown on a local server only (they are in the README). */
export function demoHint(clientId, secret, appKey) {
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(location.hostname);
  if (!local) return "";
  return `<br>Local demo: <code>${clientId}</code> / <code>${secret}</code>, app key <code>${appKey}</code>, enterprise <code>BROWNS</code>.`;
}

/**
 * A Storage kept in memory: GraphiQL's tabs and history are not written to localStorage,
 * so nothing of a session outlives the tab.
 */
export function memoryStorage() {
  const items = new Map();
  return {
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => void items.set(key, String(value)),
    removeItem: (key) => void items.delete(key),
    clear: () => items.clear(),
    get length() {
      return items.size;
    },
  };
}

/** "3 s ago", "2 min ago", or the time of day. */
export function ago(ms, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return new Date(ms).toLocaleString([], { hour12: false });
}
