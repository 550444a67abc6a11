// The operators' dashboard: polls `GET /admin/v1/chains` with an admin token and shows a
// card per chain with its numbers, charts of publish and delivery rates, and its consumers
// (`GET /admin/v1/chains/{chain}/consumers`), those behind highlighted.
import uPlot from "uplot";
import { mountSignIn } from "./session.js";
import { ago, demoHint } from "./shared.js";

/** How often the admin API is asked, and how much history the charts keep. */
const POLL_MS = 2000;
const WINDOW_MS = 5 * 60 * 1000;
const REQUEST_TIMEOUT_MS = 5000;
const PUBLISH_COLOUR = "#0b5cad";
/** Consumers listed per chain, and the lag (events) from which one is shown as behind:
 *  `?lagWarn=N` in the page's address sets it. */
const CONSUMERS_SHOWN = 50;
const LAG_WARN = Math.max(1, Number(new URLSearchParams(location.search).get("lagWarn")) || 1000);
const DELIVERY_COLOUR = "#b4530a";

const $ = (selector) => document.querySelector(selector);
const banner = $(".banner");
const overview = $(".overview");
const cards = $(".cards");
const updated = $(".updated");

/** Per chain: its card's parts and the samples the rates are computed from. */
const chains = new Map();
let poller = null;

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

const number = (n) => (n == null ? "–" : Number(n).toLocaleString("en-US"));
const rate = (n) => (n == null ? "–" : n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US"));

function field(dl, name, label) {
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.dataset.field = name;
  // A div per pair keeps each label above its value however the grid wraps.
  const pair = document.createElement("div");
  pair.append(dt, dd);
  dl.append(pair);
  return dd;
}

function createCard(code) {
  const card = document.createElement("article");
  card.className = "card";
  card.dataset.chain = code;
  const title = document.createElement("h2");
  title.textContent = code;
  title.id = `chain-${code}`;
  card.setAttribute("aria-labelledby", title.id);
  const dl = document.createElement("dl");
  const fields = {
    headOffset: field(dl, "headOffset", "Head offset"),
    oldestOffset: field(dl, "oldestOffset", "Oldest retained"),
    retainedEvents: field(dl, "retainedEvents", "Retained events"),
    subscribers: field(dl, "subscribers", "Subscribers"),
    lastPublishAt: field(dl, "lastPublishAt", "Last publish"),
    deliveries: field(dl, "deliveries", "Frames delivered"),
  };
  const rates = document.createElement("p");
  rates.className = "rates";
  const chart = document.createElement("div");
  chart.className = "chart";
  chart.setAttribute("role", "img");
  const consumers = createConsumers(code);
  card.append(title, dl, rates, chart, consumers.section);
  cards.append(card);
  const plot = new uPlot(
    {
      width: Math.max(200, chart.clientWidth || card.clientWidth - 32),
      height: 180,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: true }, publish: { range: (u, min, max) => [0, Math.max(1, max)] }, delivery: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [
        // Clock time to the second (uPlot's default shows fractions of a second).
        { space: 90, values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false })) },
        { scale: "publish", label: "events/s published", stroke: PUBLISH_COLOUR, size: 55 },
        { scale: "delivery", label: "frames/s delivered", side: 1, stroke: DELIVERY_COLOUR, grid: { show: false }, size: 55 },
      ],
      series: [
        {},
        { label: "published", scale: "publish", stroke: PUBLISH_COLOUR, width: 2, fill: "rgba(11,92,173,0.08)" },
        { label: "delivered", scale: "delivery", stroke: DELIVERY_COLOUR, width: 2, dash: [6, 3] },
      ],
    },
    [[], [], []],
    chart,
  );
  new ResizeObserver(() => plot.setSize({ width: Math.max(200, chart.clientWidth), height: 180 })).observe(chart);
  const entry = { card, fields, rates, chart, plot, consumers, samples: [], points: [[], [], []] };
  chains.set(code, entry);
  return entry;
}

/** The consumers table of a chain's card. */
function createConsumers(code) {
  const section = document.createElement("section");
  section.className = "consumers";
  const heading = document.createElement("h3");
  heading.id = `consumers-${code}`;
  heading.textContent = "Consumers";
  section.setAttribute("aria-labelledby", heading.id);
  const note = document.createElement("p");
  note.className = "hint consumers-note";
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const label of ["Client", "App key", "Filter", "Delivered through", "Lag (events)", "Last ack"]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = label;
    head.append(th);
  }
  const body = table.createTBody();
  const scroller = document.createElement("div");
  scroller.className = "table-scroll";
  scroller.append(table);
  section.append(heading, note, scroller);
  return { section, note, table, body };
}

const filterText = (f) =>
  [f.properties && `hotels ${f.properties.join(", ")}`, f.eventNames && `events ${f.eventNames.join(", ")}`, f.moduleNames && `modules ${f.moduleNames.join(", ")}`]
    .filter(Boolean)
    .join("; ") || "all";

/** Fills a chain's consumers table: each attached subscription, the furthest behind first. */
function showConsumers(entry, page, now) {
  const { note, table, body } = entry.consumers;
  body.replaceChildren();
  const subs = [...(page?.subscriptions ?? [])].sort((a, b) => b.lagEvents - a.lagEvents);
  const behind = subs.filter((s) => s.lagEvents >= LAG_WARN).length;
  table.hidden = subs.length === 0;
  note.textContent = !page
    ? "Consumers could not be read; retrying."
    : subs.length === 0
      ? "No vendor is streaming this chain."
      : `${subs.length}${page.next ? "+" : ""} attached; ${behind} behind by ${number(LAG_WARN)} events or more.`;
  for (const s of subs) {
    const row = body.insertRow();
    row.dataset.client = s.clientId;
    row.dataset.lag = s.lagEvents;
    const lagging = s.lagEvents >= LAG_WARN;
    if (lagging) row.className = "lagging";
    const cells = [s.clientId, s.appKey, filterText(s.filter), s.deliveredThrough, number(s.lagEvents), s.lastAckAt ? ago(s.lastAckAt, now) : "none yet"];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      cell.textContent = text;
      if (i === 4 && lagging) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "behind";
        cell.append(" ", badge);
      }
    });
  }
}

async function fetchConsumers(session, code, signal) {
  try {
    const res = await fetch(`/admin/v1/chains/${encodeURIComponent(code)}/consumers?limit=${CONSUMERS_SHOWN}`, {
      headers: { authorization: `Bearer ${session.token}` },
      cache: "no-store",
      credentials: "omit",
      signal,
    });
    return res.ok ? await res.json() : null;
  } catch {
    return null;
  }
}

/** Adds a sample and the rates since the previous one (none across an object restart). */
function record(entry, stats, at) {
  const previous = entry.samples.at(-1);
  entry.samples.push({ at, head: BigInt(stats.headOffset), deliveries: stats.deliveries, since: stats.countingSince });
  if (entry.samples.length > 2) entry.samples.shift();
  let publish = null;
  let delivery = null;
  if (previous) {
    const seconds = (at - previous.at) / 1000;
    const published = Number(BigInt(stats.headOffset) - previous.head);
    publish = published >= 0 ? published / seconds : null;
    delivery = previous.since === stats.countingSince ? Math.max(0, stats.deliveries - previous.deliveries) / seconds : null;
  }
  const [xs, ps, ds] = entry.points;
  xs.push(at / 1000);
  ps.push(publish);
  ds.push(delivery);
  while (xs.length && xs[0] < (at - WINDOW_MS) / 1000) {
    xs.shift();
    ps.shift();
    ds.shift();
  }
  return { publish, delivery };
}

function show(entry, stats, now) {
  const { publish, delivery } = record(entry, stats, now);
  const f = entry.fields;
  f.headOffset.textContent = stats.headOffset;
  f.oldestOffset.textContent = stats.oldestOffset ?? "none";
  f.retainedEvents.textContent = number(stats.retainedEvents);
  f.subscribers.textContent = number(stats.subscribers);
  f.lastPublishAt.textContent = stats.lastPublishAt ? ago(stats.lastPublishAt, now) : "never";
  f.lastPublishAt.title = stats.lastPublishAt ? new Date(stats.lastPublishAt).toISOString() : "";
  f.deliveries.textContent = number(stats.deliveries);
  f.deliveries.title = `since the chain's object started, ${new Date(stats.countingSince).toISOString()}`;
  entry.rates.innerHTML = "";
  const words = [
    ["publish", "published", publish, "events/s", "publishRate"],
    ["delivery", "delivered", delivery, "frames/s", "deliveryRate"],
  ];
  for (const [kind, label, value, unit, name] of words) {
    const swatch = document.createElement("span");
    swatch.className = `swatch ${kind}`;
    swatch.setAttribute("aria-hidden", "true");
    const text = document.createElement("span");
    text.dataset.field = name;
    text.dataset.value = value ?? "";
    text.textContent = `${label} ${rate(value)} ${unit}`;
    entry.rates.append(swatch, text, " ");
  }
  entry.chart.setAttribute(
    "aria-label",
    `${stats.chainCode}, last 5 minutes: ${rate(publish)} events/s published and ${rate(delivery)} frames/s delivered now.`,
  );
  entry.plot.setData(entry.points);
}

async function poll(session, signal) {
  const timeout = AbortSignal.any([signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
  let res;
  try {
    res = await fetch("/admin/v1/chains", {
      headers: { authorization: `Bearer ${session.token}` },
      cache: "no-store",
      credentials: "omit",
      signal: timeout,
    });
  } catch {
    if (signal.aborted) return "stop";
    showBanner("The service cannot be reached; retrying every few seconds.");
    return "retry";
  }
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    showBanner("The token is invalid or has expired: sign in again.");
    return "stop";
  }
  if (res.status === 403) {
    showBanner("This client is not an operator: the dashboard needs a client with the scope urn:pms:admin.");
    return "stop";
  }
  if (!res.ok) {
    showBanner(`The admin API answered ${res.status}${body.message ? `: ${body.message}` : ""}; retrying.`);
    return "retry";
  }
  showBanner("");
  const now = Date.now();
  const seen = new Set();
  const listed = body.chains ?? [];
  const consumers = await Promise.all(listed.map((stats) => fetchConsumers(session, stats.chainCode, timeout)));
  listed.forEach((stats, i) => {
    seen.add(stats.chainCode);
    const entry = chains.get(stats.chainCode) ?? createCard(stats.chainCode);
    show(entry, stats, now);
    showConsumers(entry, consumers[i], now);
  });
  for (const [code, entry] of chains) {
    if (!seen.has(code)) {
      entry.card.remove();
      chains.delete(code);
    }
  }
  if (!seen.size) showBanner("This operator has no chain granted.");
  updated.textContent = `Updated ${new Date(now).toLocaleTimeString([], { hour12: false })}, every ${POLL_MS / 1000} s.`;
  return "again";
}

function start(session) {
  poller?.abort();
  poller = null;
  for (const entry of chains.values()) entry.card.remove();
  chains.clear();
  if (!session) {
    overview.hidden = true;
    showBanner("");
    return;
  }
  overview.hidden = false;
  const controller = new AbortController();
  poller = controller;
  const loop = async () => {
    const next = await poll(session, controller.signal);
    if (next !== "stop" && !controller.signal.aborted) setTimeout(loop, POLL_MS);
  };
  loop();
}

mountSignIn($(".signin-panel"), $(".session"), {
  scope: "urn:pms:admin",
  purpose: `Sign in with an operator's client credentials (scope <code>urn:pms:admin</code>).
    The token stays in this tab's memory and is gone when you close it. ${demoHint("ops-admin", "ops-secret", "OPSKEY001")}`,
  onSession: start,
});
