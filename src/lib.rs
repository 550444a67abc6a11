//! PMS Events: real-time hotel PMS event streaming. The modules below are plain Rust and
//! know nothing of the Workers runtime; `edge` is the thin glue that only exists in the
//! wasm build (`node_tools` is the configuration checks built for Node instead). The parts
//! of the system, from the ground up:
//!
//! - `log`: one chain's offset log and how it is read; `config`: the service configuration;
//!   `graphql`: the schema, operations and projections;
//! - `auth`: tokens, the OAuth endpoint, grants, guards; `publish` validates what the PMS
//!   publishes;
//! - `stream`: the WebSocket session, subscriptions, delivery from the log and its relay;
//!   `pull` and `webhook` are the other two ways events leave the log, and `current_state`
//!   serves the entities' state folded from it;
//! - `rpc`: the internal requests between the Worker and its Durable Objects;
//! - `chain`: the chain object's core, over storage and socket traits;
//! - `routes`, `query_string`, `audit`, `metrics`, `service_tally`, `pages`, `specs`, `docs`: the
//!   service around them.

// `clippy::pedantic` is clean but for these, allowed on purpose:
#![allow(
    clippy::must_use_candidate,
    clippy::return_self_not_must_use,
    reason = "a crate used by its own glue and tests: an unused result here is caught by review and tests, \
              and #[must_use] on ~100 accessors would be noise"
)]
#![allow(
    clippy::missing_errors_doc,
    clippy::missing_panics_doc,
    reason = "errors are typed and each variant says what failed; the crate is not published as an API"
)]

pub mod audit;
pub mod auth;
pub mod chain;
pub mod config;
pub mod current_state;
pub mod docs;
pub mod graphql;
pub mod log;
pub mod metrics;
pub mod pages;
pub mod publish;
pub mod pull;
pub mod query_string;
pub mod routes;
pub mod rpc;
pub mod service_tally;
pub mod specs;
pub mod stream;
pub mod text;
pub mod webhook;

#[cfg(all(target_arch = "wasm32", feature = "edge"))]
mod edge;
#[cfg(all(target_arch = "wasm32", feature = "node-tools"))]
mod node_tools;

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
