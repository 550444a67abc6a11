//! Who may do what: access tokens and the OAuth token endpoint that issues them, the
//! grants a token carries, the vendor's `connection_init` check, client secrets, and the
//! login and upgrade guards that bound how often anyone may try.

pub mod access;
pub mod connect;
pub mod oauth;
pub mod ratelimit;
pub mod secret;
pub mod token;
