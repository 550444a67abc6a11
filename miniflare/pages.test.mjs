// The pages in a real browser: Debian's Chromium driven by playwright-core, against the
// built Worker and its static assets on workerd. Sign in, stream, publish through the API
// and see the offset arrive; the dashboard's numbers and charts move with a burst; both
// pages pass axe-core, fit a narrow window and keep no secret anywhere the browser keeps
// things. `SCREENSHOTS=1` also saves the README's screenshots (npm run screenshots).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import axe from "axe-core";
import { chromium } from "playwright-core";
import { startWorker, request, tokenFor, publish, event, DEMO, vendorSocket, until } from "./harness.mjs";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.SCREENSHOTS === "1";
const WIDE = { width: 1280, height: 800 };
const NARROW = { width: 390, height: 844 };

let w;
let browser;
let pms;
/** Everything the pages printed, and every secret they must never print or keep. */
const consoleLines = [];
const secrets = new Set([DEMO.app1.secret, DEMO.ops.secret]);

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is not at ${CHROMIUM}: scripts/setup.sh installs it`);
  assert.ok(existsSync(path.join(root, "build/pages/playground.html")), "the pages are not built: scripts/build.sh");
  w = await startWorker({ pages: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  pms = await tokenFor(w.base, DEMO.pms1);
});

after(async () => {
  await browser?.close();
  await w?.dispose();
});

async function openPage(pathname, viewport = WIDE) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("console", (m) => consoleLines.push(`${pathname} ${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`${pathname} pageerror: ${e.message}`));
  // Every request the page makes stays on this origin (no CDN, works offline).
  const elsewhere = [];
  const tokens = [];
  page.on("response", async (r) => {
    if (new URL(r.url()).pathname === "/oauth/v1/tokens" && r.ok()) tokens.push((await r.json()).access_token);
  });
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.protocol !== "data:" && url.host !== new URL(w.base).host) elsewhere.push(r.url());
  });
  const res = await page.goto(w.base + pathname);
  assert.equal(res.status(), 200);
  assert.match(res.headers()["content-security-policy"], /script-src 'self';/);
  return { context, page, elsewhere, tokens };
}

async function signIn(page, client) {
  await page.getByLabel("Client id").fill(client.id);
  await page.getByLabel("Client secret").fill(client.secret);
  await page.getByLabel("App key").fill(client.appKey);
  await page.getByLabel("Enterprise").fill(client.enterprise);
  await page.getByRole("button", { name: "Get a token" }).click();
}

/** No serious or critical axe-core violation on the page as it is now. */
async function assertAccessible(page, what) {
  await page.evaluate(axe.source);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`),
    [],
    `${what}: accessibility violations`,
  );
}

async function assertNoHorizontalScroll(page, what) {
  const { scroll, client } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  assert.ok(scroll <= client, `${what}: the page is ${scroll} px wide in a ${client} px window`);
}

/** Nothing the browser keeps for the origin holds a secret or a token. */
async function assertNothingKept(context, page, tokens, what) {
  assert.ok(tokens.length > 0, `${what}: no token was issued to check for`);
  const kept = await page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage }, cookie: document.cookie, url: location.href }));
  const cookies = JSON.stringify(await context.cookies());
  for (const secret of [...secrets, ...tokens]) {
    assert.ok(!kept.includes(secret) && !cookies.includes(secret), `${what}: a secret or token is kept by the browser`);
  }
}

function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  mkdirSync(path.join(root, "docs/screenshots"), { recursive: true });
  return page.screenshot({ path: path.join(root, "docs/screenshots", `${name}.png`) });
}

test("the pages and their files are served with their headers; other methods and names are refused", async () => {
  for (const pathname of ["/playground", "/dashboard"]) {
    const res = await request(w.base, "GET", pathname);
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"], /^text\/html/);
    assert.equal(res.headers["cache-control"], "no-cache");
    assert.match(res.headers["content-security-policy"], /frame-ancestors 'none'/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(res.text)[1];
    const asset = await request(w.base, "GET", script);
    assert.equal(asset.status, 200);
    assert.match(asset.headers["content-type"], /javascript/);
    assert.equal(asset.headers["cache-control"], "public, max-age=31536000, immutable");
  }
  assert.equal((await request(w.base, "POST", "/playground", { body: "x" })).status, 405);
  assert.equal((await request(w.base, "GET", "/assets/missing-0000.js")).status, 404);
  assert.equal((await request(w.base, "GET", "/playground.html")).status, 404);
});

test("playground: a wrong secret is explained, then sign-in, subscribe, publish and see the offset", async () => {
  const { context, page, elsewhere, tokens } = await openPage("/playground");
  await assertAccessible(page, "playground sign-in");
  await signIn(page, { ...DEMO.app1, secret: "not-the-secret" });
  await page.getByRole("alert").filter({ hasText: "client id, secret, app key or enterprise is wrong" }).waitFor();

  await page.getByLabel("Client secret").fill(DEMO.app1.secret);
  await page.getByRole("button", { name: "Get a token" }).click();
  await page.locator(".session .expiry").filter({ hasText: /token expires at \d\d:\d\d:\d\d \(in 59 min\)/ }).waitFor();
  assert.equal(await page.getByLabel("Client secret").inputValue(), "", "the secret field is cleared");

  // The schema came from introspection over the socket: the docs pane documents the inputs.
  await page.getByRole("button", { name: /Show Documentation Explorer/i }).click();
  await page.locator(".graphiql-doc-explorer").getByText("Subscription", { exact: true }).click();
  await page.locator(".graphiql-doc-explorer").getByText("newEvent", { exact: true }).click();
  await page.locator(".graphiql-doc-explorer").getByText("NewEventInput", { exact: true }).first().click();
  const docs = page.locator(".graphiql-doc-explorer");
  for (const [input, words] of [["offset", "replay starts AT this offset"], ["offsetType", "start at the newest event"], ["hotelCode", "Comma-separated property filter"], ["delta", "only detail entries whose value changed"]]) {
    await docs.getByText(input, { exact: true }).first().waitFor();
    await docs.getByText(words).first().waitFor();
  }

  // The first tab is the subscription on the first granted chain; the second is getHelp.
  assert.match(await page.locator(".graphiql-query-editor").innerText(), /newEvent\(input: \{chainCode: "TTE", offsetType: "highest"\}\)/);
  const first = await publish(w.base, pms, "TTE", event("TTE01", { eventName: "CHECKIN" }));
  const firstOffset = first.json.offsets[0];
  await page.getByRole("button", { name: /Execute query/i }).click();
  const live = page.locator(".live-list");
  await live.locator(`li[data-offset="${firstOffset}"]`).waitFor();
  const moved = event("TTE02", { eventName: "ROOM_MOVE" });
  const second = await publish(w.base, pms, "TTE", moved);
  const secondOffset = second.json.offsets[0];
  await live.locator(`li[data-offset="${secondOffset}"]`).filter({ hasText: "ROOM_MOVE · TTE02" }).waitFor();
  // GraphiQL's results pane shows the event with its offset.
  await page.locator(".result-window").filter({ hasText: `"offset": "${secondOffset}"` }).waitFor();
  assert.equal(await live.locator("li").count(), 2);
  await assertAccessible(page, "playground streaming");
  await assertNoHorizontalScroll(page, "playground at 1280x800");
  await screenshot(page, "playground");

  // Stop ends the subscription on the server at once: it no longer counts as a subscriber.
  await page.getByRole("button", { name: /Stop query/i }).click();
  const ops = await tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" });
  await until(async () => (await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${ops}` } })).json.subscribers === 0, 5000, "subscription stopped");

  // The getHelp tab answers over the same socket.
  await page.getByRole("button", { name: "Help", exact: true }).click();
  await page.getByRole("button", { name: /Execute query/i }).click();
  await page.locator(".result-window").filter({ hasText: '"status": "Inactive"' }).waitFor();
  // So does the state tab: the room move's reservation, as of an offset at or past it.
  await page.getByRole("button", { name: "CurrentState", exact: true }).click();
  await until(async () => {
    await page.getByRole("button", { name: /Execute query/i }).click();
    const text = await page.locator(".result-window").innerText();
    const asOf = /"asOfOffset": "(\d+)"/.exec(text)?.[1];
    return asOf && BigInt(asOf) >= BigInt(secondOffset) && text.includes(`"primaryKey": "${moved.primaryKey}"`) && text.includes('"lastEventName": "ROOM_MOVE"');
  }, 10_000, "the state tab shows the room move");
  await assertNothingKept(context, page, tokens, "playground");
  assert.deepEqual(elsewhere, [], "requests to other origins");
  await context.close();
});

test("playground: a close code is shown in words (4403 for an operator's token on the stream)", async () => {
  const { context, page } = await openPage("/playground");
  await signIn(page, DEMO.ops);
  // An operator holds no urn:pms:events: the token endpoint refuses the scope in words.
  await page.getByRole("alert").filter({ hasText: "does not hold the scope" }).waitFor();
  await context.close();

  // A vendor whose grant is fine, but whose socket the server closes: 4401 with its reason.
  const second = await openPage("/playground");
  await signIn(second.page, DEMO.app1);
  await second.page.locator(".session .expiry").waitFor();
  // The schema's introspection ran first, on its own socket: wait for it to be in the docs.
  await second.page.getByRole("button", { name: /Show Documentation Explorer/i }).click();
  await second.page.locator(".graphiql-doc-explorer").getByText("Subscription", { exact: true }).waitFor();
  // Replace the session's token with a forged one, as an expired or tampered token would be.
  await second.page.evaluate(() => {
    const real = WebSocket.prototype.send;
    WebSocket.prototype.send = function (data) {
      const message = JSON.parse(data);
      if (message.type === "connection_init") message.payload.Authorization = "Bearer not.a.token";
      return real.call(this, JSON.stringify(message));
    };
  });
  await second.page.getByRole("button", { name: /Execute query/i }).click();
  await second.page.locator(".banner").filter({ hasText: /The token is invalid or has expired: sign in again\. \(close 4401\) Server: “Unauthorized/ }).waitFor();
  await second.page.locator(".result-window").filter({ hasText: "close 4401" }).waitFor();
  await assertAccessible(second.page, "playground with a close banner");
  await second.context.close();
});

test("dashboard: cards for the operator's chains, and a burst moves the head and the publish rate", async () => {
  const { context, page, elsewhere, tokens } = await openPage("/dashboard");
  await assertAccessible(page, "dashboard sign-in");
  await signIn(page, DEMO.ops);
  const tte = page.locator('article.card[data-chain="TTE"]');
  await tte.waitFor();
  await page.locator('article.card[data-chain="HTBTTE"]').waitFor();
  assert.equal(await page.locator("article.card").count(), 2, "only the operator's granted chains");
  const headBefore = BigInt(await tte.locator('[data-field="headOffset"]').innerText());

  // A subscriber on TTE, so deliveries move too.
  const vendor = vendorSocket(w.base, await tokenFor(w.base, DEMO.app1));
  await vendor.acked;
  vendor.subscribe("1", '{chainCode: "TTE", offsetType: "highest"}');
  await until(async () => (await tte.locator('[data-field="subscribers"]').innerText()) === "1", 10_000, "subscriber shown");

  const burst = 200;
  for (let i = 0; i < burst / 20; i++) {
    const res = await publish(w.base, pms, "TTE", Array.from({ length: 20 }, () => event("TTE01")));
    assert.equal(res.status, 200, res.text);
  }
  await until(async () => BigInt(await tte.locator('[data-field="headOffset"]').innerText()) === headBefore + BigInt(burst), 10_000, "head moved by the burst");
  await until(async () => Number(await tte.locator('[data-field="publishRate"]').getAttribute("data-value")) > 0, 10_000, "publish rate > 0");
  await until(async () => Number(await tte.locator('[data-field="deliveryRate"]').getAttribute("data-value")) > 0, 10_000, "delivery rate > 0");
  assert.match(await tte.locator('[data-field="lastPublishAt"]').innerText(), /s ago$/);
  assert.match(await tte.locator(".chart").getAttribute("aria-label"), /TTE, last 5 minutes: [\d.,]+ events\/s published/);
  // The chart drew the rates: its canvas is not blank.
  const drawn = await tte.locator(".chart canvas").evaluate((c) => c.getContext("2d").getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0));
  assert.ok(drawn, "the chart canvas has content");
  // The consumers table: the vendor keeping up is listed, not behind.
  const reading = tte.locator('.consumers tr[data-client="client-app-001"]');
  await until(async () => (await reading.count()) === 1 && (await reading.getAttribute("data-lag")) === "0", 10_000, "the reading vendor listed at lag 0");
  assert.equal(await reading.getAttribute("class"), null, "not highlighted");
  // A second vendor stops reading while 12 MB are published: it is shown behind.
  const stalled = vendorSocket(w.base, await tokenFor(w.base, DEMO.app2), { appKey: "APPKEY002" });
  await stalled.acked;
  stalled.subscribe("1", '{chainCode: "TTE", offsetType: "highest"}', "metadata { offset } detail { newValue }");
  await until(async () => (await tte.locator('[data-field="subscribers"]').innerText()) === "2", 10_000, "second subscriber shown");
  stalled.ws._socket.pause();
  const pad = "x".repeat(4000);
  for (let i = 0; i < 30; i++) {
    await publish(w.base, pms, "TTE", Array.from({ length: 100 }, () => event("TTE01", { detail: [{ elementName: "Note", newValue: pad }] })));
  }
  const behind = tte.locator('.consumers tr.lagging[data-client="client-app-002"]');
  await until(async () => (await behind.count()) === 1, 10_000, "the stalled vendor highlighted as behind");
  assert.match(await behind.innerText(), /behind/);
  assert.ok(Number(await behind.getAttribute("data-lag")) >= 1000);
  assert.match(await tte.locator(".consumers-note").innerText(), /2 attached; 1 behind by 1,000 events or more/);
  await assertAccessible(page, "dashboard with data");
  await assertNoHorizontalScroll(page, "dashboard at 1280x800");
  await screenshot(page, "dashboard");
  stalled.ws._socket.resume();
  stalled.ws.close(1000);
  vendor.ws.close(1000);
  await assertNothingKept(context, page, tokens, "dashboard");
  assert.deepEqual(elsewhere, [], "requests to other origins");
  await context.close();
});

test("dashboard: a vendor's client is told it needs urn:pms:admin", async () => {
  const { context, page } = await openPage("/dashboard");
  await signIn(page, DEMO.app1);
  await page.getByRole("alert").filter({ hasText: "does not hold the scope" }).waitFor();
  await context.close();
});

test("both pages work on a narrow window", async () => {
  for (const [pathname, client, ready] of [["/playground", DEMO.app1, ".graphiql-container"], ["/dashboard", DEMO.ops, "article.card"]]) {
    const { context, page } = await openPage(pathname, NARROW);
    await assertNoHorizontalScroll(page, `${pathname} sign-in at 390 px`);
    await signIn(page, client);
    await page.locator(ready).first().waitFor();
    await page.waitForTimeout(500);
    await assertNoHorizontalScroll(page, `${pathname} at 390 px`);
    await assertAccessible(page, `${pathname} at 390 px`);
    await context.close();
  }
});

test("the pages printed no secret and broke no content security policy", () => {
  const joined = consoleLines.join("\n");
  for (const secret of secrets) assert.ok(!joined.includes(secret), "a secret in the browser console");
  assert.ok(!/eyJ[\w-]{10,}\.[\w-]{10,}\./.test(joined), "a token in the browser console");
  assert.ok(!/Content Security Policy/i.test(joined), `CSP violations:\n${joined}`);
  assert.ok(!/pageerror/.test(joined), `uncaught errors:\n${joined}`);
});
