// GraphiQL 4 renders a few things that fail WCAG checks (axe-core): CodeMirror's hidden
// textareas have no label, each tab of a `role="tablist"` holds a close button beside it, and
// CodeMirror's scroll area cannot be reached by keyboard. GraphiQL re-renders these, so a
// MutationObserver mends them each time; every change is idempotent (no observer loop).

const EDITOR_LABELS = [
  [".graphiql-query-editor", "GraphQL operation editor"],
  [".graphiql-editor-tool", "Variables editor (JSON)"],
  [".result-window", "Result (read only)"],
];

function set(element, name, value) {
  if (element.getAttribute(name) !== value) element.setAttribute(name, value);
}

function unset(element, name) {
  if (element.hasAttribute(name)) element.removeAttribute(name);
}

function mend(host) {
  for (const [area, label] of EDITOR_LABELS) {
    for (const editor of host.querySelectorAll(`${area} .CodeMirror`)) {
      const textarea = editor.querySelector("textarea");
      if (textarea) set(textarea, "aria-label", label);
      const scroll = editor.querySelector(".CodeMirror-scroll");
      if (scroll) {
        set(scroll, "tabindex", "0");
        set(scroll, "aria-label", `${label}, scroll area`);
        set(scroll, "role", "region");
      }
    }
  }
  // GraphiQL's tab list holds each tab's close button beside the tab, which a tablist may
  // not. So the tabs become what they behave as: a list of buttons, the active one marked
  // aria-current, each close button naming the tab it closes.
  for (const list of host.querySelectorAll("ul.graphiql-tabs")) unset(list, "role");
  for (const tab of host.querySelectorAll(".graphiql-tab")) {
    const title = tab.querySelector(".graphiql-tab-button");
    if (!title) continue;
    unset(tab, "role");
    unset(tab, "aria-selected");
    unset(tab, "aria-controls");
    unset(title, "role");
    unset(title, "aria-selected");
    if (tab.classList.contains("graphiql-tab-active")) set(title, "aria-current", "true");
    else unset(title, "aria-current");
    const close = tab.querySelector(".graphiql-tab-close");
    if (close) set(close, "aria-label", `Close tab ${title.textContent.trim()}`);
  }
}

export function mendAccessibility(host) {
  mend(host);
  const observer = new MutationObserver(() => mend(host));
  observer.observe(host, { subtree: true, childList: true, attributes: true, attributeFilter: ["class", "role", "aria-selected", "aria-label"] });
  return () => observer.disconnect();
}
