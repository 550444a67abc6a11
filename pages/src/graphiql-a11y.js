// GraphiQL 4 renders a few things that fail WCAG checks (axe-core): CodeMirror's hidden
// textareas have no label, each tab is a `role="tab"` that contains its close button, and
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
  // The tab role moves from the list item to its title button, beside the close button.
  for (const tab of host.querySelectorAll(".graphiql-tab")) {
    const title = tab.querySelector(".graphiql-tab-button");
    if (!title) continue;
    const selected = tab.classList.contains("graphiql-tab-active") ? "true" : "false";
    set(tab, "role", "presentation");
    unset(tab, "aria-selected");
    unset(tab, "aria-controls");
    set(title, "role", "tab");
    set(title, "aria-selected", selected);
  }
}

export function mendAccessibility(host) {
  mend(host);
  const observer = new MutationObserver(() => mend(host));
  observer.observe(host, { subtree: true, childList: true, attributes: true, attributeFilter: ["class", "role", "aria-selected"] });
  return () => observer.disconnect();
}
