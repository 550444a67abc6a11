//! PMS Events: real-time hotel PMS event streaming. The modules below are plain Rust and
//! know nothing of the Workers runtime; `edge` is the thin glue that only exists in the
//! wasm build.

pub mod access;
pub mod audit;
pub mod chain_log;
pub mod config;
pub mod connect;
pub mod event_id;
pub mod fanout;
pub mod graphql;
pub mod oauth;
pub mod pages;
pub mod protocol;
pub mod publish;
pub mod pull;
pub mod ratelimit;
pub mod relay;
pub mod routes;
pub mod rpc;
pub mod secret;
pub mod specs;
pub mod subscribe;
pub mod token;
pub mod webhook;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod edge;

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
