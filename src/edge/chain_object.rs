//! `ChainLog`: one Durable Object per chain code (`idFromName(chainCode)`), owning that
//! chain's offset log in its SQLite storage.
//!
//! Platform invariants this file relies on:
//! - SQL `exec` is synchronous, and writes made in one turn with no `await` between them
//!   are committed together. `append` runs head read, inserts and head write in one such
//!   turn, so a batch is stored whole or not at all and no other request interleaves.
//! - The output gate holds the response until those writes are durable: a publisher never
//!   sees an offset that a crash could take back.
//! - A deploy or eviction restarts the object: nothing here lives only in memory except
//!   a hint of whether the retention alarm is already set.

use std::cell::Cell;

use serde::Deserialize;
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue,
    State,
};

use crate::chain_log::{ChainLog as Log, LogStore, Offset, StoreError, StoredEvent};
use crate::publish::ValidEvent;

#[durable_object]
pub struct ChainLog {
    state: State,
    env: Env,
    log: Log<SqlLogStore>,
    alarm_set: Cell<bool>,
}

pub struct SqlLogStore {
    sql: SqlStorage,
}

fn store_err(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

fn int(v: u64) -> SqlStorageValue {
    // Offsets and millisecond times stay far below 2^53, the largest exact JS number.
    SqlStorageValue::from(v as i64)
}

#[derive(Deserialize)]
struct Row {
    seq: u64,
    unique_event_id: String,
    hotel_id: String,
    module_name: String,
    event_name: String,
    stored_at: u64,
    body: String,
}

impl SqlLogStore {
    fn new(sql: SqlStorage) -> Result<Self> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS events (
                seq INTEGER PRIMARY KEY,
                unique_event_id TEXT NOT NULL UNIQUE,
                hotel_id TEXT NOT NULL,
                module_name TEXT NOT NULL,
                event_name TEXT NOT NULL,
                stored_at INTEGER NOT NULL,
                body TEXT NOT NULL
            )",
            None,
        )?;
        sql.exec(
            "CREATE INDEX IF NOT EXISTS events_stored_at ON events(stored_at)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            None,
        )?;
        Ok(SqlLogStore { sql })
    }

    fn meta(&self, key: &str) -> std::result::Result<Option<u64>, StoreError> {
        #[derive(Deserialize)]
        struct V {
            value: u64,
        }
        let rows: Vec<V> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map(|r| r.value))
    }

    fn set_meta(&self, key: &str, value: u64) -> std::result::Result<(), StoreError> {
        self.sql
            .exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![key.into(), int(value)],
            )
            .map(|_| ())
            .map_err(store_err)
    }
}

impl LogStore for SqlLogStore {
    fn head(&self) -> std::result::Result<Offset, StoreError> {
        Ok(self.meta("head")?.unwrap_or(0))
    }

    fn set_head(&self, head: Offset) -> std::result::Result<(), StoreError> {
        self.set_meta("head", head)
    }

    fn offset_of(&self, unique_event_id: &str) -> std::result::Result<Option<Offset>, StoreError> {
        #[derive(Deserialize)]
        struct S {
            seq: u64,
        }
        let rows: Vec<S> = self
            .sql
            .exec(
                "SELECT seq FROM events WHERE unique_event_id = ?",
                vec![unique_event_id.into()],
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map(|r| r.seq))
    }

    fn insert(&self, e: &StoredEvent) -> std::result::Result<(), StoreError> {
        self.sql
            .exec(
                "INSERT INTO events (seq, unique_event_id, hotel_id, module_name, event_name, stored_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![
                    int(e.offset),
                    e.unique_event_id.as_str().into(),
                    e.hotel_id.as_str().into(),
                    e.module_name.as_str().into(),
                    e.event_name.as_str().into(),
                    int(e.stored_at),
                    e.body.as_str().into(),
                ],
            )
            .map(|_| ())
            .map_err(store_err)
    }

    fn oldest(&self) -> std::result::Result<Option<(Offset, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct O {
            seq: u64,
            stored_at: u64,
        }
        let rows: Vec<O> = self
            .sql
            .exec(
                "SELECT seq, stored_at FROM events ORDER BY seq LIMIT 1",
                None,
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map(|r| (r.seq, r.stored_at)))
    }

    fn count(&self) -> std::result::Result<u64, StoreError> {
        #[derive(Deserialize)]
        struct N {
            n: u64,
        }
        let rows: Vec<N> = self
            .sql
            .exec("SELECT COUNT(*) AS n FROM events", None)
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map(|r| r.n).unwrap_or(0))
    }

    fn read_from(
        &self,
        from: Offset,
        limit: usize,
    ) -> std::result::Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<Row> = self
            .sql
            .exec(
                "SELECT seq, unique_event_id, hotel_id, module_name, event_name, stored_at, body FROM events WHERE seq >= ? ORDER BY seq LIMIT ?",
                vec![int(from), int(limit as u64)],
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows
            .into_iter()
            .map(|r| StoredEvent {
                offset: r.seq,
                unique_event_id: r.unique_event_id,
                hotel_id: r.hotel_id,
                module_name: r.module_name,
                event_name: r.event_name,
                stored_at: r.stored_at,
                body: r.body,
            })
            .collect())
    }

    fn delete_stored_before(
        &self,
        cutoff: u64,
        limit: usize,
    ) -> std::result::Result<usize, StoreError> {
        self.sql
            .exec(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE stored_at < ? ORDER BY seq LIMIT ?)",
                vec![int(cutoff), int(limit as u64)],
            )
            .map(|c| c.rows_written())
            .map_err(store_err)
    }
}

/// An absolute alarm time. (A bare integer would be read as an offset from now.)
fn scheduled_at(ms: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
        ms as f64,
    )))
}

fn internal(e: StoreError) -> worker::Error {
    worker::Error::RustError(e.0)
}

impl ChainLog {
    fn retention_ms(&self) -> u64 {
        super::settings::load(&self.env)
            .map(|s| s.config.retention_seconds)
            .unwrap_or(crate::config::DEFAULT_RETENTION_SECONDS)
            * 1000
    }

    async fn ensure_alarm(&self) -> Result<()> {
        if self.alarm_set.get() {
            return Ok(());
        }
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            if let Some(at) = self
                .log
                .next_expiry(self.retention_ms())
                .map_err(internal)?
            {
                storage.set_alarm(scheduled_at(at)).await?;
            }
        }
        self.alarm_set.set(true);
        Ok(())
    }

    async fn append(&self, mut req: Request) -> Result<Response> {
        let batch: Vec<ValidEvent> = req.json().await?;
        let now = super::now_ms();
        // One synchronous turn: offsets assigned and rows written together (see top).
        let offsets = self.log.append(&batch, now).map_err(internal)?;
        self.log
            .store()
            .set_meta("last_publish_at", now)
            .map_err(internal)?;
        self.ensure_alarm().await?;
        Response::from_json(&serde_json::json!({ "offsets": offsets }))
    }

    fn stats(&self) -> Result<Response> {
        let stats = self.log.stats().map_err(internal)?;
        let last = self.log.store().meta("last_publish_at").map_err(internal)?;
        Response::from_json(&serde_json::json!({
            "headOffset": stats.head_offset,
            "oldestOffset": stats.oldest_offset,
            "retainedEvents": stats.retained_events,
            "subscribers": self.state.get_websockets().len(),
            "lastPublishAt": last,
        }))
    }

    fn read(&self, req: &Request) -> Result<Response> {
        #[derive(Deserialize)]
        struct Q {
            from: u64,
            limit: Option<usize>,
        }
        let q: Q = req.query()?;
        let page = self
            .log
            .read_page(q.from, q.limit.unwrap_or(100).min(1000), 1 << 20)
            .map_err(internal)?;
        Response::from_json(&serde_json::json!({ "events": page.events, "next": page.next }))
    }
}

impl DurableObject for ChainLog {
    fn new(state: State, env: Env) -> Self {
        let store = match SqlLogStore::new(state.storage().sql()) {
            Ok(s) => s,
            // Schema creation only fails if storage itself is broken; every request will
            // then fail with a 500 from the store, which is the honest answer.
            Err(e) => {
                worker::console_error!("chain log schema: {e}");
                SqlLogStore {
                    sql: state.storage().sql(),
                }
            }
        };
        ChainLog {
            state,
            env,
            log: Log::new(store),
            alarm_set: Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (worker::Method::Post, "/append") => self.append(req).await,
            (worker::Method::Get, "/stats") => self.stats(),
            (worker::Method::Get, "/read") => self.read(&req),
            _ => Response::error("unknown chain log operation", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let outcome = self
            .log
            .apply_retention(super::now_ms(), self.retention_ms())
            .map_err(internal)?;
        if outcome.deleted > 0 {
            super::audit(
                "retention.applied",
                serde_json::json!({"deleted": outcome.deleted}),
            );
        }
        if let Some(at) = outcome.next_alarm {
            self.state.storage().set_alarm(scheduled_at(at)).await?;
        }
        self.alarm_set.set(outcome.next_alarm.is_some());
        Response::ok("")
    }

    async fn websocket_message(
        &self,
        ws: worker::WebSocket,
        _msg: worker::WebSocketIncomingMessage,
    ) -> Result<()> {
        ws.close(Some(1011), Some("no subscription protocol on this socket"))
    }

    async fn websocket_close(
        &self,
        ws: worker::WebSocket,
        _code: usize,
        _reason: String,
        _clean: bool,
    ) -> Result<()> {
        let _ = ws.close(Some(1000), Some("closed"));
        Ok(())
    }

    async fn websocket_error(&self, _ws: worker::WebSocket, _error: worker::Error) -> Result<()> {
        Ok(())
    }
}
