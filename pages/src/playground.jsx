// The vendors' playground: sign in, then GraphiQL on `/subscriptions` over graphql-ws (the
// same protocol and credentials a vendor's code uses), with every event listed by offset.
import { createRoot } from "react-dom/client";
import { GraphiQL } from "graphiql";
import { parse } from "graphql";
import { createClient } from "graphql-ws";
import { mendAccessibility } from "./graphiql-a11y.js";
import { mountSignIn } from "./session.js";
import { describeClose, demoHint, memoryStorage } from "./shared.js";

/** Events kept in the "Live events" list: the page never grows without bound. */
const LIVE_KEPT = 200;

const $ = (selector) => document.querySelector(selector);
const banner = $(".banner");
const workspace = $(".workspace");
const liveList = $(".live-list");
const liveCount = $(".live-count");
const liveEmpty = $(".live-empty");
let root = null;
let client = null;
let received = 0;
let unmend = null;

function showBanner(text, kind = "error") {
  banner.textContent = text;
  banner.className = kind === "error" ? "banner" : "banner info";
  banner.hidden = !text;
}

function subscriptionTab(chain) {
  return {
    query: `# Streams ${chain}'s events: press ▶ (or Ctrl-Enter), then publish an event.
# Each event shows here and, with its offset, in "Live events". offsetType "highest"
# starts at the newest event; offset: "42" replays from offset 42; without either, a
# stream resumes after the last offset delivered to this app key.
subscription NewEvents {
  newEvent(input: {chainCode: "${chain}", offsetType: "highest"}) {
    metadata { offset uniqueEventId }
    eventName
    moduleName
    hotelId
    primaryKey
    timestamp
    detail { elementName oldValue newValue }
  }
}
`,
  };
}

function stateTab(chain) {
  return {
    query: `# Who is in house now: the current state of ${chain}'s entities, folded from their
# events, a page at a time. Pass "next" as "after" for the next page; every page is as of
# asOfOffset, so a vendor then streams from asOfOffset + 1 and skips events at or below an
# entity's lastOffset. hotelCode and moduleNames narrow it.
query CurrentState {
  currentState(input: {chainCode: "${chain}", first: 100}) {
    asOfOffset
    next
    entities {
      hotelId
      moduleName
      primaryKey
      lastOffset
      lastEventName
      elements { elementName value }
    }
  }
}
`,
  };
}

const HELP_TAB = {
  query: `# Where to read more, and whether this app key already streams elsewhere.
query Help {
  getHelp {
    overview
    connection { help errors }
    events { payload replaying }
  }
  connection { id status }
}
`,
};

function socketUrl(appKey) {
  const key = btoa(String.fromCharCode(...new TextEncoder().encode(appKey)));
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/subscriptions?key=${encodeURIComponent(key)}`;
}

/** One graphql-ws client per session; GraphiQL's operations share its socket. */
function connect(session) {
  return createClient({
    url: socketUrl(session.appKey),
    connectionParams: { Authorization: `Bearer ${session.token}`, "x-app-key": session.appKey },
    lazy: true,
    retryAttempts: 0,
    keepAlive: 10_000,
    on: {
      connected: () => showBanner(""),
      closed: (event) => {
        const text = describeClose(event);
        if (text) showBanner(text);
      },
    },
  });
}

function recordEvent(result) {
  const event = result?.data?.newEvent;
  if (!event?.metadata) return;
  received += 1;
  liveEmpty.hidden = true;
  const item = document.createElement("li");
  const offset = document.createElement("span");
  offset.className = "offset";
  offset.textContent = event.metadata.offset;
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = [event.eventName, event.hotelId].filter(Boolean).join(" · ") || "event";
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = new Date().toLocaleTimeString([], { hour12: false });
  item.append(offset, what, when);
  item.dataset.offset = event.metadata.offset;
  liveList.prepend(item);
  while (liveList.children.length > LIVE_KEPT) liveList.lastElementChild.remove();
  liveCount.textContent = `(${received} received${received > LIVE_KEPT ? `, newest ${LIVE_KEPT} shown` : ""})`;
}

/**
 * The operation to run. GraphiQL 4 can send the operation name of the tab shown before
 * (switch from NewEvents to Help and run: it asks for "NewEvents"); the name is kept only
 * when the document defines it, else a document of one operation runs that one.
 */
function operationNameIn(query, asked) {
  let names;
  try {
    names = parse(query).definitions.filter((d) => d.kind === "OperationDefinition").map((d) => d.name?.value);
  } catch {
    return asked ?? undefined; // the service answers a syntax error in its own words
  }
  if (asked && names.includes(asked)) return asked;
  return names.length === 1 ? names[0] ?? undefined : asked ?? undefined;
}

/**
 * GraphiQL's fetcher, as an Observable: `unsubscribe` (GraphiQL's stop button, or a new
 * run) completes the operation on the server at once. A socket closed by the server ends
 * the operation with its reason, in words, as the result.
 */
function fetcherFor(session) {
  client = connect(session);
  return (params) => ({
    subscribe(observer) {
      const dispose = client.subscribe(
        { query: params.query, variables: params.variables ?? undefined, operationName: operationNameIn(params.query, params.operationName) },
        {
          next: (result) => {
            recordEvent(result);
            observer.next(result);
          },
          error: (err) => {
            const message = describeClose(err) ?? (Array.isArray(err) ? err.map((e) => e.message).join("; ") : String(err?.message ?? err));
            observer.next({ errors: [{ message }] });
            observer.complete();
          },
          complete: () => observer.complete(),
        },
      );
      return { unsubscribe: dispose };
    },
  });
}

function render(session) {
  client?.dispose();
  client = null;
  root?.unmount();
  root = null;
  unmend?.();
  unmend = null;
  if (!session) {
    workspace.hidden = true;
    showBanner("");
    return;
  }
  if (!session.chains.length) {
    showBanner("Signed in, but this client has no chain granted: ask the PMS operator for a grant.");
  }
  workspace.hidden = false;
  const host = $(".graphiql-host");
  root = createRoot(host);
  unmend = mendAccessibility(host);
  root.render(
    <GraphiQL
      fetcher={fetcherFor(session)}
      defaultTabs={[subscriptionTab(session.chains[0] ?? "TTE"), stateTab(session.chains[0] ?? "TTE"), HELP_TAB]}
      storage={memoryStorage()}
      isHeadersEditorEnabled={false}
      shouldPersistHeaders={false}
      defaultEditorToolsVisibility={false}
      forcedTheme="light"
    />,
  );
}

mountSignIn($(".signin-panel"), $(".session"), {
  scope: "urn:pms:events",
  purpose: `Sign in with your application's client credentials (scope <code>urn:pms:events</code>).
    The token stays in this tab's memory and is gone when you close it. ${demoHint("client-app-001", "secret-001", "APPKEY001")}`,
  onSession: render,
});
