//! The documentation the Worker serves, so that what vendors read comes from the files in
//! the repository: the README and the guides under `docs/`. The `getHelp` query links into
//! them.

/// A served document: its path under the service's base URL, and its Markdown.
pub struct Doc {
    pub path: &'static str,
    pub markdown: &'static str,
}

pub const README: Doc = Doc { path: "/README.md", markdown: include_str!("../README.md") };

/// The guides, served at `/docs/<name>`.
pub const GUIDES: [Doc; 4] = [
    Doc { path: "/docs/protocol.md", markdown: include_str!("../docs/protocol.md") },
    Doc { path: "/docs/operations.md", markdown: include_str!("../docs/operations.md") },
    Doc { path: "/docs/architecture.md", markdown: include_str!("../docs/architecture.md") },
    Doc { path: "/docs/benchmarks.md", markdown: include_str!("../docs/benchmarks.md") },
];

/// The document served at `path`, if one is.
pub fn at(path: &str) -> Option<&'static Doc> {
    std::iter::once(&README).chain(GUIDES.iter()).find(|doc| doc.path == path)
}

/// Where `getHelp` sends a reader for each topic: a document's path and a heading's anchor.
pub mod help {
    pub const OVERVIEW: &str = "/README.md#overview";
    pub const CONFIGURATION: &str = "/docs/operations.md#configuration";
    pub const CONNECTING: &str = "/docs/protocol.md#connecting";
    pub const ERRORS: &str = "/docs/protocol.md#errors";
    pub const EVENT_PAYLOAD: &str = "/docs/protocol.md#event-payload";
    pub const REPLAYING: &str = "/docs/protocol.md#replaying";
}
