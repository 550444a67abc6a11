//! The guard objects' internal requests and answers (the login guard per client id; the
//! upgrade window and the open connections per app key), shared by both sides.

use serde::{Deserialize, Serialize};

use crate::auth::ratelimit::LoginLimits;

pub const LOGIN_CHECK: &str = "/login/check";
pub const LOGIN_RECORD: &str = "/login/record";
pub const UPGRADE: &str = "/upgrade";
pub const RELEASE: &str = "/connections/release";
pub const RENEW: &str = "/connections/renew";

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

/// Admit one WebSocket upgrade of the object's app key: within the upgrade window, and
/// one more open connection for the gateway isolate `isolate`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeRequest {
    pub max: u32,
    pub window_seconds: u64,
    pub isolate: String,
    pub max_open: u64,
}

/// Why an upgrade was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UpgradeRefusal {
    /// The app key holds its most open connections.
    Open,
    /// Too many upgrades in the window.
    Rate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeVerdict {
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub refused: Option<UpgradeRefusal>,
}

/// A gateway isolate's connection ended ([`RELEASE`]), or the count it holds now
/// ([`RENEW`], with `count`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionsHeld {
    pub isolate: String,
    #[serde(default)]
    pub count: u32,
}
