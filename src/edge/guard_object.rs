//! `LoginGuardObject`: one object per client id (failed logins, counted across every
//! isolate of the Worker) and one per app key (`upgrade:<app key>`: WebSocket upgrades per
//! window). The rules are `ratelimit`'s; this file stores and answers.

use std::cell::RefCell;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::auth::ratelimit::{LoginGuard, UpgradeWindow};
use crate::rpc::guard::{self, LoginCheck, LoginRecord, LoginVerdict, UpgradeRequest, UpgradeVerdict};

#[durable_object]
pub struct LoginGuardObject {
    state: State,
    /// Upgrades in the window, in memory: a rate limit may forget when the object is
    /// evicted, which happens only once nobody has connected for a while.
    upgrades: RefCell<UpgradeWindow>,
}

const KEY: &str = "guard";

impl LoginGuardObject {
    async fn guard(&self) -> Result<LoginGuard> {
        Ok(self.state.storage().get(KEY).await?.unwrap_or_default())
    }
}

impl DurableObject for LoginGuardObject {
    fn new(state: State, _env: Env) -> Self {
        LoginGuardObject { state, upgrades: RefCell::new(UpgradeWindow::default()) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let now = super::now_ms() / 1000;
        match req.path().as_str() {
            guard::LOGIN_CHECK => {
                let check: LoginCheck = req.json().await?;
                let guard = self.guard().await?;
                Response::from_json(&LoginVerdict {
                    retry_after: guard.retry_after(&check.source, now),
                    tracked: !guard.is_empty(),
                })
            }
            guard::LOGIN_RECORD => {
                let record: LoginRecord = req.json().await?;
                let mut guard = self.guard().await?;
                if record.ok {
                    guard.record_success(&record.source);
                } else {
                    guard.record_failure(&record.source, now, record.limits);
                }
                let storage = self.state.storage();
                if guard.is_empty() {
                    storage.delete(KEY).await?;
                } else {
                    storage.put(KEY, &guard).await?;
                }
                Response::from_json(&LoginVerdict {
                    retry_after: guard.retry_after(&record.source, now),
                    tracked: !guard.is_empty(),
                })
            }
            guard::UPGRADE => {
                let ask: UpgradeRequest = req.json().await?;
                let verdict = self.upgrades.borrow_mut().admit(super::now_ms(), ask.max, ask.window_seconds);
                Response::from_json(&UpgradeVerdict { retry_after: verdict.err() })
            }
            _ => Response::error("unknown guard operation", 404),
        }
    }
}
