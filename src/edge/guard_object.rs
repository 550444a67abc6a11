//! `LoginGuardObject`: one object per client id (failed logins, counted across every
//! isolate of the Worker) and one per app key (`upgrade:<app key>`: WebSocket upgrades per
//! window, and the app key's open connections across the deployment). The rules are
//! `ratelimit`'s; this file stores and answers.

use std::cell::RefCell;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::auth::ratelimit::{LoginGuard, OpenConnections, UpgradeWindow};
use crate::rpc::guard::{
    self, ConnectionsHeld, LoginCheck, LoginRecord, LoginVerdict, UpgradeRefusal, UpgradeRequest, UpgradeVerdict,
};

#[durable_object]
pub struct LoginGuardObject {
    state: State,
    /// Upgrades in the window, in memory: a rate limit may forget when the object is
    /// evicted, which happens only once nobody has connected for a while.
    upgrades: RefCell<UpgradeWindow>,
    /// Open connections by isolate, read from storage at first use (`None` until then):
    /// a ceiling must not forget the connections still open when the object is evicted.
    open: RefCell<Option<OpenConnections>>,
}

const KEY: &str = "guard";
const OPEN_KEY: &str = "open";

impl LoginGuardObject {
    async fn guard(&self) -> Result<LoginGuard> {
        Ok(self.state.storage().get(KEY).await?.unwrap_or_default())
    }

    /// Runs `f` on the open connections (read from storage first if need be) and stores
    /// the result. The object handles one request at a time up to its storage awaits; the
    /// read happens once per instance, before any change.
    async fn with_open<T>(&self, f: impl FnOnce(&mut OpenConnections) -> T) -> Result<T> {
        if self.open.borrow().is_none() {
            let stored: OpenConnections = self.state.storage().get(OPEN_KEY).await?.unwrap_or_default();
            self.open.borrow_mut().get_or_insert(stored);
        }
        let (out, snapshot) = {
            let mut open = self.open.borrow_mut();
            let open = open.get_or_insert_with(OpenConnections::default);
            (f(open), open.clone())
        };
        let storage = self.state.storage();
        if snapshot.is_empty() {
            storage.delete(OPEN_KEY).await?;
        } else {
            storage.put(OPEN_KEY, &snapshot).await?;
        }
        Ok(out)
    }
}

impl DurableObject for LoginGuardObject {
    fn new(state: State, _env: Env) -> Self {
        LoginGuardObject { state, upgrades: RefCell::new(UpgradeWindow::default()), open: RefCell::new(None) }
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
                let now_ms = super::now_ms();
                let admitted = self.with_open(|open| open.admit(&ask.isolate, ask.max_open, now_ms)).await?;
                if !admitted {
                    return Response::from_json(&UpgradeVerdict {
                        retry_after: None,
                        refused: Some(UpgradeRefusal::Open),
                    });
                }
                let within_rate = self.upgrades.borrow_mut().admit(now_ms, ask.max, ask.window_seconds);
                match within_rate {
                    Ok(()) => Response::from_json(&UpgradeVerdict { retry_after: None, refused: None }),
                    Err(retry_after) => {
                        // The connection counted above will not open.
                        self.with_open(|open| open.release(&ask.isolate)).await?;
                        let refused = Some(UpgradeRefusal::Rate);
                        Response::from_json(&UpgradeVerdict { retry_after: Some(retry_after), refused })
                    }
                }
            }
            guard::RELEASE => {
                let held: ConnectionsHeld = req.json().await?;
                self.with_open(|open| open.release(&held.isolate)).await?;
                Response::ok("")
            }
            guard::RENEW => {
                let held: ConnectionsHeld = req.json().await?;
                let now_ms = super::now_ms();
                self.with_open(|open| open.renew(&held.isolate, held.count, now_ms)).await?;
                Response::ok("")
            }
            _ => Response::error("unknown guard operation", 404),
        }
    }
}
