//! The guard objects' internal requests and answers (the login guard per client id, the
//! upgrade window per app key), shared by both sides.

use serde::{Deserialize, Serialize};

use crate::auth::ratelimit::LoginLimits;

pub const LOGIN_CHECK: &str = "/login/check";
pub const LOGIN_RECORD: &str = "/login/record";
pub const UPGRADE: &str = "/upgrade";

/// Is this source (or the whole client id) locked out? Read-only: creates no state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginCheck {
    pub source: String,
}

/// The outcome of a login attempt of a configured client id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRecord {
    pub source: String,
    pub ok: bool,
    pub limits: LoginLimits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginVerdict {
    pub retry_after: Option<u64>,
    /// The guard holds failures of this client id (a success then has something to clear).
    pub tracked: bool,
}

/// Admit one WebSocket upgrade of the object's app key?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeRequest {
    pub max: u32,
    pub window_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeVerdict {
    pub retry_after: Option<u64>,
}
