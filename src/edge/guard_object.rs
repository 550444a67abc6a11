//! `LoginGuard`: one object per client id, so failed logins are counted across every
//! isolate of the Worker. The state is one small record in the object's storage.

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::ratelimit::LoginGuard;

#[durable_object]
pub struct LoginGuardObject {
    state: State,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Attempt {
    ok: bool,
    max_failures: u32,
    lockout_seconds: u64,
}

impl DurableObject for LoginGuardObject {
    fn new(state: State, _env: Env) -> Self {
        LoginGuardObject { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let attempt: Attempt = req.json().await?;
        let storage = self.state.storage();
        let mut guard: LoginGuard = storage.get("guard").await?.unwrap_or_default();
        let now = super::now_ms() / 1000;
        // While locked out, an attempt is refused and not counted: the lockout ends on time.
        let retry_after = match guard.retry_after(now) {
            Some(secs) => Some(secs),
            None => {
                if attempt.ok {
                    guard.record_success();
                } else {
                    guard.record_failure(now, attempt.max_failures, attempt.lockout_seconds);
                }
                storage.put("guard", &guard).await?;
                None
            }
        };
        Response::from_json(&serde_json::json!({ "retryAfter": retry_after }))
    }
}
