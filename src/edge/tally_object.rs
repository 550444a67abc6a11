//! `ServiceTallyObject`: the one object the isolates add their counts to
//! (`crate::service_tally`), kept in storage so that a restart of the object does not reset
//! what Prometheus reads as counters.

use std::cell::RefCell;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::rpc::tally;
use crate::service_tally::ServiceTally;

#[durable_object]
pub struct ServiceTallyObject {
    state: State,
    /// The sum, read from storage at first use (`None` until then).
    total: RefCell<Option<ServiceTally>>,
}

const KEY: &str = "tally";

impl ServiceTallyObject {
    async fn loaded(&self) -> Result<()> {
        if self.total.borrow().is_none() {
            let stored: ServiceTally = self.state.storage().get(KEY).await?.unwrap_or_default();
            self.total.borrow_mut().get_or_insert(stored);
        }
        Ok(())
    }
}

impl DurableObject for ServiceTallyObject {
    fn new(state: State, _env: Env) -> Self {
        ServiceTallyObject { state, total: RefCell::new(None) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            tally::ADD => {
                let counts: ServiceTally = req.json().await?;
                self.loaded().await?;
                let snapshot = {
                    let mut total = self.total.borrow_mut();
                    let total = total.get_or_insert_with(ServiceTally::default);
                    total.merge(&counts);
                    total.clone()
                };
                self.state.storage().put(KEY, &snapshot).await?;
                Ok(Response::empty()?.with_status(204))
            }
            tally::READ => {
                self.loaded().await?;
                Response::from_json(&self.total.borrow().clone().unwrap_or_default())
            }
            _ => Response::error("not found", 404),
        }
    }
}
