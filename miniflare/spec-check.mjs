// Checks live responses and stream messages against the API descriptions in schema/.
//
// The harness's `request` and `vendorSocket` call these on everything the end-to-end suite
// receives, so a drift between a spec and the worker's behaviour fails the test that saw it:
// an undocumented status, a body that does not match its schema, a missing documented header,
// a stream message or close code that schema/asyncapi.yaml does not list.
import { readFileSync, appendFileSync } from "node:fs";
import path from "node:path";
import YAML from "yaml";
import Ajv2020 from "ajv/dist/2020.js";
import Ajv07 from "ajv";
import addFormats from "ajv-formats";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
export const openapi = YAML.parse(readFileSync(path.join(root, "schema/openapi.yaml"), "utf8"));
export const asyncapi = YAML.parse(readFileSync(path.join(root, "schema/asyncapi.yaml"), "utf8"));

// OpenAPI 3.1 schemas are JSON Schema 2020-12; `$ref`s point into the document itself.
const ajvHttp = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajvHttp);
ajvHttp.addSchema({ ...openapi, $id: "openapi" }, "openapi");

// AsyncAPI 3.0's default schema format is a superset of JSON Schema draft 7.
const ajvStream = new Ajv07({ strict: false, allErrors: true });
addFormats(ajvStream);
ajvStream.addSchema({ ...asyncapi, $id: "asyncapi" }, "asyncapi");

const pointer = (parts) => "#/" + parts.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

/** Follows a local `$ref` of the OpenAPI document (responses, headers). */
function deref(node) {
  while (node && node.$ref) {
    node = node.$ref.slice(2).split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~")).reduce((n, p) => n?.[p], openapi);
  }
  return node;
}

const templates = Object.keys(openapi.paths).map((template) => ({
  template,
  regex: new RegExp("^" + template.replace(/[.]/g, "\\.").replace(/\{[^}]+\}/g, "[^/]+") + "$"),
}));

/** The documented path template a concrete path matches, or undefined. */
export function pathTemplate(pathname) {
  const p = pathname.split("?")[0];
  return templates.find((t) => t.regex.test(p))?.template;
}

const validators = new Map();
function validator(ajv, ref) {
  if (!validators.has(ref)) validators.set(ref, ajv.getSchema(ref) ?? ajv.compile({ $ref: ref }));
  return validators.get(ref);
}

const coverageFile = process.env.E2E_SPEC_COVERAGE;

/**
 * The problems of one HTTP response against openapi.yaml, as strings (empty when it conforms).
 * `res` is the harness's `{status, headers, text, json}`.
 */
export function httpProblems(method, pathname, res) {
  const template = pathTemplate(pathname);
  const problems = [];
  const item = template && openapi.paths[template];
  // HEAD is answered as GET without a body.
  const opKey = method === "HEAD" ? "get" : method.toLowerCase();
  const op = item?.[opKey];
  // A configuration that cannot load breaks every route, known or not (the document says so).
  if (!op && res.status === 500 && res.json?.error === "configuration_error") return problems;
  if (!template) {
    if (res.status !== 404) problems.push(`${method} ${pathname}: an undocumented path answered ${res.status}, not 404`);
    else if (res.json?.error !== "not_found") problems.push(`${method} ${pathname}: 404 without {"error":"not_found"}`);
    return problems;
  }
  if (!op) {
    const allow = Object.keys(item).filter((k) => ["get", "post", "put", "delete", "patch"].includes(k)).map((k) => k.toUpperCase());
    if (res.status !== 405) problems.push(`${method} ${template}: an undocumented method answered ${res.status}, not 405`);
    else if ((res.headers.allow ?? "").split(", ").sort().join() !== allow.sort().join()) {
      problems.push(`${method} ${template}: Allow "${res.headers.allow}" is not the documented ${allow.join(", ")}`);
    }
    return problems;
  }
  const declared = op.responses[String(res.status)];
  const response = deref(declared);
  if (!response) {
    problems.push(`${method} ${template}: status ${res.status} is not documented (${res.text.slice(0, 200)})`);
    return problems;
  }
  for (const [name, header] of Object.entries(response.headers ?? {})) {
    if (deref(header).required && res.headers[name.toLowerCase()] === undefined) {
      problems.push(`${method} ${template} ${res.status}: the documented header ${name} is missing`);
    }
  }
  if (method === "HEAD" || res.status === 101) return problems;
  const contentType = (res.headers["content-type"] ?? "").split(";")[0].trim();
  const content = response.content ?? {};
  if (!Object.keys(content).length) return problems;
  if (!content[contentType]) {
    problems.push(`${method} ${template} ${res.status}: content type "${contentType}" is not documented (${Object.keys(content).join(", ")})`);
    return problems;
  }
  if (contentType !== "application/json") return problems;
  if (res.json === undefined) {
    problems.push(`${method} ${template} ${res.status}: the body is not JSON`);
    return problems;
  }
  // The schema where the spec declares it (the shared response, or the operation's own).
  const responsePointer = declared.$ref ?? pointer(["paths", template, opKey, "responses", String(res.status)]);
  const validate = validator(ajvHttp, `openapi${responsePointer}${pointer(["content", contentType, "schema"]).slice(1)}`);
  if (!validate(res.json)) {
    problems.push(`${method} ${template} ${res.status}: ${ajvHttp.errorsText(validate.errors)} in ${res.text.slice(0, 300)}`);
  }
  return problems;
}

/** Throws when a response does not conform (the harness calls it on every response). */
export function assertHttpConforms(method, pathname, res) {
  const template = pathTemplate(pathname);
  if (coverageFile && template) appendFileSync(coverageFile, `${method === "HEAD" ? "GET" : method} ${template} ${res.status}\n`);
  const problems = httpProblems(method, pathname, res);
  if (problems.length) throw new Error("response does not match schema/openapi.yaml:\n  " + problems.join("\n  "));
}

const serverMessages = Object.fromEntries(
  Object.entries(asyncapi.components.messages).map(([key, m]) => [m.name, `asyncapi#/components/messages/${key}/payload`]),
);
/** The component key of a message referenced through the channel. */
const componentKey = (ref) => asyncapi.channels.subscriptions.messages[ref.$ref.split("/").pop()].$ref.split("/").pop();
/** What the server may send: the messages of its `send` operations, and the replies of its `receive` ones. */
const sendNames = new Set();
for (const op of Object.values(asyncapi.operations)) {
  const sent = op.action === "send" ? op.messages : op.reply?.messages ?? [];
  for (const ref of sent) sendNames.add(asyncapi.components.messages[componentKey(ref)].name);
}

/** The problems of one message the server sent on the stream. */
export function messageProblems(message) {
  if (!sendNames.has(message?.type)) return [`the server sent a message of type "${message?.type}", which asyncapi.yaml does not list`];
  const validate = validator(ajvStream, serverMessages[message.type]);
  return validate(message) ? [] : [`${message.type}: ${ajvStream.errorsText(validate.errors)} in ${JSON.stringify(message).slice(0, 300)}`];
}

export const documentedCloseCodes = new Map(asyncapi.channels.subscriptions["x-close-codes"].map((c) => [c.code, c.reason]));

/**
 * The problems of a close the client saw. 1005 and 1006 are not sent by anyone (no code; the
 * connection dropped); a code the client sent itself is echoed.
 */
export function closeProblems(code, { clientCode } = {}) {
  if (code === 1005 || code === 1006 || code === clientCode) return [];
  return documentedCloseCodes.has(code) ? [] : [`close code ${code} is not listed in asyncapi.yaml's x-close-codes`];
}

/**
 * The problems of one webhook request the worker posted (openapi.yaml `webhooks`): the three
 * Standard Webhooks headers and the body's schema. `headers` as node:http gives them.
 */
export function webhookProblems(headers, body) {
  const op = openapi.webhooks.chainEvents.post;
  const problems = [];
  for (const p of op.parameters) {
    const value = headers[p.name];
    if (value === undefined) problems.push(`webhook request lacks header ${p.name}`);
    else if (p.schema.pattern && !new RegExp(p.schema.pattern).test(value)) problems.push(`webhook header ${p.name} = ${value} does not match ${p.schema.pattern}`);
  }
  if (!/^application\/json/.test(headers["content-type"] ?? "")) problems.push(`webhook content-type is ${headers["content-type"]}`);
  const validate = validator(ajvHttp, "openapi#/components/schemas/WebhookBatch");
  if (!validate(body)) problems.push(`webhook body: ${ajvHttp.errorsText(validate.errors)}`);
  return problems;
}
