//! The service tally object's requests (`crate::service_tally`): one object, named
//! [`OBJECT_NAME`], that every isolate adds its counts to and the metrics route reads.

/// Internal requests need an absolute URL; the host is never resolved.
pub const TALLY_ORIGIN: &str = "https://tally.internal";
/// The one object's name.
pub const OBJECT_NAME: &str = "service";
/// `POST` a [`crate::service_tally::ServiceTally`] to add; answer `204`.
pub const ADD: &str = "/tally/add";
/// `GET`; answer the [`crate::service_tally::ServiceTally`] summed so far.
pub const READ: &str = "/tally";
