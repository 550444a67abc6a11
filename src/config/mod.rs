//! The service configuration: one JSON document (`document`), parsed into plain typed
//! values that can only exist valid (`model`), with its limits (`limits`), the hashes of
//! client secrets (`secret_hash`), the checked parts of a webhook (`endpoint`) and the
//! operator's commands over them (`operator_tools`). The ground floor of the service: it
//! knows nothing of streaming, publishing or webhooks.

mod document;
pub mod endpoint;
pub mod limits;
mod model;
pub mod operator_tools;
pub mod secret_hash;

pub use document::MAX_SECRET_HASHES;
pub use limits::{Limits, LIMIT_RANGES};
pub use model::{
    Chain, Client, ConfigError, Grant, Scope, ServiceConfig, Webhook, DEFAULT_MAX_BATCH, DEFAULT_RETENTION_SECONDS,
    MAX_MAX_BATCH, MAX_RETENTION_SECONDS, MAX_WEBHOOKS_PER_CHAIN,
};
