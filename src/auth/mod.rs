//! Who may do what: access tokens and the OAuth token endpoint that issues them, the
//! grants a token carries, and the guards that bound how often anyone may try to log in,
//! connect, or hold connections open.

pub mod access;
pub mod oauth;
pub mod ratelimit;
pub mod token;
