//! All of the chain object's SQL: the log's rows behind [`LogStore`], and the object's
//! own tables (saved cursors, attached subscriptions, its chain code, webhook states).
//! SQL `exec` is synchronous, so every method here completes within the caller's turn.

use std::collections::HashMap;

use serde::Deserialize;
use wasm_bindgen::prelude::*;
use worker::{Result, SqlStorage, SqlStorageValue};

use crate::log::event_id::index_key;
use crate::log::{LogStore, NewEvent, Offset, StoreError, StoredEvent};
use crate::webhook::WebhookState;

/// Durable Object SQL binds at most 100 parameters per statement
/// (<https://developers.cloudflare.com/durable-objects/platform/limits>/).
const MAX_BOUND_PARAMETERS: usize = 100;
/// Columns bound per inserted event.
const EVENT_COLUMNS: usize = 8;

/// Before retention deletes the newest event, its offset (the head) and its time (the last
/// publish) are kept in `meta`: with rows, both are read from the newest row, so an append
/// writes nothing but its rows.
const RECORD_NEWEST: &str = "WITH newest AS (SELECT seq, stored_at FROM events ORDER BY seq DESC LIMIT 1) \
    INSERT INTO meta (key, value) \
        SELECT 'head', seq FROM newest WHERE stored_at < ? \
        UNION ALL SELECT 'last_publish_at', stored_at FROM newest WHERE stored_at < ? \
    ON CONFLICT(key) DO UPDATE SET value = excluded.value";

// `storage.transactionSync(fn)` commits what `fn` wrote, or rolls it all back if `fn` throws.
// The Rust body answers whether to commit; this wrapper throws for it, so no exception ever
// unwinds through wasm frames.
#[wasm_bindgen(inline_js = "export function transaction_sync(storage, body) { \
        storage.transactionSync(() => { if (!body()) { throw new Error('rolled back'); } }); }")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn transaction_sync(storage: &JsValue, body: &js_sys::Function) -> std::result::Result<(), JsValue>;
}

#[derive(Deserialize)]
struct EventRow {
    seq: u64,
    unique_event_id: String,
    hotel_id: String,
    module_name: String,
    event_name: String,
    stored_at: u64,
    body: String,
}

/// The chain object's `SQLite` storage: the log's rows (through [`LogStore`]) and the
/// object's own tables.
pub struct ChainStorage {
    sql: SqlStorage,
    /// The storage object itself, for `transactionSync`.
    storage: JsValue,
}

#[allow(clippy::needless_pass_by_value, reason = "the shape `map_err` takes")]
fn store_err(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

#[allow(clippy::cast_possible_wrap, reason = "offsets and millisecond times stay far below 2^53")]
fn int(v: u64) -> SqlStorageValue {
    // Offsets and millisecond times stay far below 2^53, the largest exact JS number.
    SqlStorageValue::from(v as i64)
}

/// A binding of an offset, key or time, all far below 2^53 (exact as a JS number).
#[allow(clippy::cast_precision_loss, reason = "offsets, keys and millisecond times stay far below 2^53")]
fn number(v: u64) -> JsValue {
    JsValue::from_f64(v as f64)
}

/// Names kept per batch: a chain's batches name a few hotels, modules and events.
const INTERNED_NAMES: usize = 16;

/// `text` as a JS string, copied out of wasm once per batch while at most
/// [`INTERNED_NAMES`] names are kept (a short list: faster than hashing for so few, and
/// bounded when a batch names many).
fn interned<'a>(names: &mut Vec<(&'a str, JsValue)>, text: &'a str) -> JsValue {
    if let Some((_, js)) = names.iter().find(|(name, _)| *name == text) {
        return js.clone();
    }
    let js = JsValue::from_str(text);
    if names.len() < INTERNED_NAMES {
        names.push((text, js.clone()));
    }
    js
}

impl ChainStorage {
    /// Opens the storage, creating the schema. Should that fail (only broken storage does),
    /// the store is still returned and every request fails with the store's error, which is
    /// the honest answer.
    pub fn open(sql: SqlStorage, storage: JsValue) -> Self {
        if let Err(e) = Self::create_schema(&sql) {
            worker::console_error!("chain log schema: {e}");
        }
        ChainStorage { sql, storage }
    }

    fn create_schema(sql: &SqlStorage) -> Result<()> {
        sql.exec(
            "CREATE TABLE IF NOT EXISTS events (
                seq INTEGER PRIMARY KEY,
                id_key INTEGER NOT NULL,
                unique_event_id TEXT NOT NULL,
                hotel_id TEXT NOT NULL,
                module_name TEXT NOT NULL,
                event_name TEXT NOT NULL,
                stored_at INTEGER NOT NULL,
                body TEXT NOT NULL
            )",
            None,
        )?;
        sql.exec("CREATE INDEX IF NOT EXISTS events_stored_at ON events(stored_at)", None)?;
        // Ids are looked up by an integer key (then compared in full; see `event_id`): an
        // integer index is a fraction of the size of one over the id text, and time-ordered
        // keys for UUIDv7 ids keep each batch's index writes on the index's last pages.
        sql.exec("CREATE INDEX IF NOT EXISTS events_id_key ON events(id_key)", None).map_err(|e| {
            worker::Error::RustError(format!(
                "{e}: this log's storage was written by a pre-release build (ids indexed another way) and is not \
                    migrated; remove the local state (.wrangler/state) or use a new chain code"
            ))
        })?;
        sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)", None)?;
        // The last offset delivered per app key and filter (server-side resume, 24 h; see
        // `fanout::cursor_key`). It only moves forward.
        sql.exec(
            "CREATE TABLE IF NOT EXISTS stream_cursors (
                cursor_key TEXT PRIMARY KEY,
                offset_delivered INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            )",
            None,
        )?;
        // Specs of attached subscriptions (too large for a socket attachment).
        sql.exec("CREATE TABLE IF NOT EXISTS subscriptions (key TEXT PRIMARY KEY, spec TEXT NOT NULL)", None)?;
        sql.exec("CREATE TABLE IF NOT EXISTS names (key TEXT PRIMARY KEY, value TEXT NOT NULL)", None)?;
        // One row per webhook: its delivery state (`webhook::WebhookState`, JSON).
        sql.exec("CREATE TABLE IF NOT EXISTS webhooks (id TEXT PRIMARY KEY, state TEXT NOT NULL)", None)?;
        Ok(())
    }

    /// When the newest event was stored (ms): from its row, or from `meta` once retention
    /// deleted it (`RECORD_NEWEST`).
    pub fn last_publish_at(&self) -> std::result::Result<Option<u64>, StoreError> {
        #[derive(Deserialize)]
        struct At {
            at: Option<u64>,
        }
        let rows: Vec<At> = self
            .sql
            .exec(
                "SELECT COALESCE(
                    (SELECT stored_at FROM events ORDER BY seq DESC LIMIT 1),
                    (SELECT value FROM meta WHERE key = 'last_publish_at')
                ) AS at",
                None,
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().and_then(|r| r.at))
    }
}

impl ChainStorage {
    /// The saved cursor of `key` (`fanout::cursor_key`): the offset delivered, and when.
    pub fn saved_cursor(&self, key: &str) -> Result<Option<(Offset, u64)>> {
        #[derive(Deserialize)]
        struct Row {
            offset_delivered: u64,
            updated_at: u64,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT offset_delivered, updated_at FROM stream_cursors WHERE cursor_key = ?", vec![key.into()])?
            .to_array()?;
        Ok(rows.first().map(|r| (r.offset_delivered, r.updated_at)))
    }

    /// Moves the saved cursor forward (never back: a replay of old events that ends early
    /// must not make the next resume repeat what was delivered since).
    pub fn save_cursor(&self, key: &str, through: Offset, now_ms: u64) -> Result<()> {
        self.sql.exec(
            "INSERT INTO stream_cursors (cursor_key, offset_delivered, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(cursor_key) DO UPDATE SET
                 offset_delivered = MAX(offset_delivered, excluded.offset_delivered),
                 updated_at = excluded.updated_at",
            vec![key.into(), int(through), int(now_ms)],
        )?;
        Ok(())
    }

    /// Saved cursors not moved since `before` (ms) are forgotten.
    pub fn drop_cursors_before(&self, before: u64) -> Result<()> {
        self.sql.exec("DELETE FROM stream_cursors WHERE updated_at < ?", vec![int(before)])?;
        Ok(())
    }

    /// Registers an attached subscription's spec (JSON) under its socket's key.
    pub fn register_subscription(&self, key: &str, spec_json: &str) -> Result<()> {
        self.sql.exec("INSERT INTO subscriptions (key, spec) VALUES (?, ?)", vec![key.into(), spec_json.into()])?;
        Ok(())
    }

    /// The spec (JSON) registered under `key`.
    pub fn subscription(&self, key: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            spec: String,
        }
        let rows: Vec<Row> =
            self.sql.exec("SELECT spec FROM subscriptions WHERE key = ?", vec![key.into()])?.to_array()?;
        Ok(rows.into_iter().next().map(|r| r.spec))
    }

    pub fn unregister_subscription(&self, key: &str) -> Result<()> {
        self.sql.exec("DELETE FROM subscriptions WHERE key = ?", vec![key.into()])?;
        Ok(())
    }

    /// The keys of every registered subscription.
    pub fn subscription_keys(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Row {
            key: String,
        }
        let rows: Vec<Row> = self.sql.exec("SELECT key FROM subscriptions", None)?.to_array()?;
        Ok(rows.into_iter().map(|r| r.key).collect())
    }

    /// The chain code this object holds, once a request named it.
    pub fn chain_code(&self) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct Row {
            value: String,
        }
        let rows: Vec<Row> = self.sql.exec("SELECT value FROM names WHERE key = 'chain'", None)?.to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    /// Keeps the chain code (the object's name: it never changes, so the first one stays).
    pub fn set_chain_code(&self, code: &str) -> Result<()> {
        self.sql.exec(
            "INSERT INTO names (key, value) VALUES ('chain', ?) ON CONFLICT(key) DO NOTHING",
            vec![code.into()],
        )?;
        Ok(())
    }

    /// One webhook's delivery state.
    pub fn webhook_state(&self, id: &str) -> Result<Option<WebhookState>> {
        #[derive(Deserialize)]
        struct Row {
            state: String,
        }
        let rows: Vec<Row> = self.sql.exec("SELECT state FROM webhooks WHERE id = ?", vec![id.into()])?.to_array()?;
        rows.first()
            .map(|r| serde_json::from_str(&r.state).map_err(|e| worker::Error::RustError(e.to_string())))
            .transpose()
    }

    pub fn save_webhook_state(&self, id: &str, state: &WebhookState) -> Result<()> {
        let json = serde_json::to_string(state).map_err(|e| worker::Error::RustError(e.to_string()))?;
        self.sql.exec(
            "INSERT INTO webhooks (id, state) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state",
            vec![id.into(), json.into()],
        )?;
        Ok(())
    }
}

impl LogStore for ChainStorage {
    /// The recorded head, or the highest stored offset if that is higher: a batch whose
    /// rows were written but whose head update failed (an exception between the two
    /// statements) must not make the next batch reuse its offsets.
    fn head(&self) -> std::result::Result<Offset, StoreError> {
        #[derive(Deserialize)]
        struct H {
            head: u64,
        }
        let rows: Vec<H> = self
            .sql
            .exec(
                "SELECT MAX(
                    COALESCE((SELECT value FROM meta WHERE key = 'head'), 0),
                    COALESCE((SELECT MAX(seq) FROM events), 0)
                ) AS head",
                None,
            )
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map_or(0, |r| r.head))
    }

    fn offsets_of(&self, ids: &[&str]) -> std::result::Result<HashMap<String, Offset>, StoreError> {
        #[derive(Deserialize)]
        struct Found {
            unique_event_id: String,
            seq: u64,
        }
        let mut found = HashMap::new();
        for chunk in ids.chunks(MAX_BOUND_PARAMETERS) {
            let query = format!(
                "SELECT unique_event_id, seq FROM events WHERE id_key IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let rows: Vec<Found> = self
                .sql
                .exec(&query, chunk.iter().map(|id| int(index_key(id))).collect::<Vec<_>>())
                .and_then(|c| c.to_array())
                .map_err(store_err)?;
            // Two ids may share a key: only the ids asked for count.
            found.extend(
                rows.into_iter()
                    .filter(|r| chunk.contains(&r.unique_event_id.as_str()))
                    .map(|r| (r.unique_event_id, r.seq)),
            );
        }
        Ok(found)
    }

    fn insert_all(&self, events: &[NewEvent<'_>]) -> std::result::Result<(), StoreError> {
        // Each string bound is a copy out of wasm: the few hotel, module and event names of
        // a batch are copied once each and bound by reference.
        let mut names = Vec::with_capacity(INTERNED_NAMES);
        let chunks: Vec<(String, Vec<JsValue>)> = events
            .chunks(MAX_BOUND_PARAMETERS / EVENT_COLUMNS)
            .map(|chunk| {
                let query = format!(
                    "INSERT INTO events \
                        (seq, id_key, unique_event_id, hotel_id, module_name, event_name, stored_at, body) VALUES {}",
                    vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
                );
                let mut bindings = Vec::with_capacity(chunk.len() * EVENT_COLUMNS);
                for &NewEvent { offset, stored_at, event: e } in chunk {
                    bindings.extend([
                        number(offset),
                        number(index_key(&e.unique_event_id)),
                        JsValue::from_str(&e.unique_event_id),
                        interned(&mut names, &e.hotel_id),
                        interned(&mut names, &e.module_name),
                        interned(&mut names, &e.event_name),
                        number(stored_at),
                        JsValue::from_str(&e.body),
                    ]);
                }
                (query, bindings)
            })
            .collect();
        let exec = |(query, bindings): (String, Vec<JsValue>)| {
            self.sql.exec_raw(&query, bindings).map(|_| ()).map_err(store_err)
        };
        // All rows or none: one statement is atomic by itself (SQLite undoes a statement
        // that fails midway); a batch of several needs a transaction.
        match <[_; 1]>::try_from(chunks) {
            Ok([statement]) => exec(statement),
            Err(statements) => self.atomically(|| statements.into_iter().try_for_each(exec)),
        }
    }

    fn oldest(&self) -> std::result::Result<Option<(Offset, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct O {
            seq: u64,
            stored_at: u64,
        }
        let rows: Vec<O> = self
            .sql
            .exec("SELECT seq, stored_at FROM events ORDER BY seq LIMIT 1", None)
            .and_then(|c| c.to_array())
            .map_err(store_err)?;
        Ok(rows.first().map(|r| (r.seq, r.stored_at)))
    }

    fn count(&self) -> std::result::Result<u64, StoreError> {
        #[derive(Deserialize)]
        struct N {
            n: u64,
        }
        let rows: Vec<N> =
            self.sql.exec("SELECT COUNT(*) AS n FROM events", None).and_then(|c| c.to_array()).map_err(store_err)?;
        Ok(rows.first().map_or(0, |r| r.n))
    }

    fn read_from(&self, from: Offset, limit: usize) -> std::result::Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = self
            .sql
            .exec(
                "SELECT seq, unique_event_id, hotel_id, module_name, event_name, stored_at, body FROM events \
                    WHERE seq >= ? ORDER BY seq LIMIT ?",
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

    fn delete_stored_before(&self, cutoff: u64, limit: usize) -> std::result::Result<usize, StoreError> {
        self.sql.exec(RECORD_NEWEST, vec![int(cutoff), int(cutoff)]).map_err(store_err)?;
        self.sql
            .exec(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE stored_at < ? ORDER BY seq LIMIT ?)",
                vec![int(cutoff), int(limit as u64)],
            )
            .map(|c| c.rows_written())
            .map_err(store_err)
    }
}

impl ChainStorage {
    /// Runs `f` as one storage transaction: if it fails, none of its writes remain.
    fn atomically<T>(
        &self,
        f: impl FnOnce() -> std::result::Result<T, StoreError>,
    ) -> std::result::Result<T, StoreError> {
        let mut f = Some(f);
        let mut outcome: Option<std::result::Result<T, StoreError>> = None;
        {
            let mut body = || {
                let result = f.take().map(|f| f());
                let commit = matches!(result, Some(Ok(_)));
                outcome = result;
                commit
            };
            let body: Box<dyn FnMut() -> bool + '_> = Box::new(&mut body);
            // SAFETY: the closure is called only by `transactionSync`, synchronously, inside
            // this block, and dropped at its end: it never outlives the borrows it holds.
            let body: Box<dyn FnMut() -> bool + 'static> = unsafe { std::mem::transmute(body) };
            let closure = Closure::wrap(body);
            let thrown = transaction_sync(&self.storage, closure.as_ref().unchecked_ref());
            drop(closure);
            if let (Err(e), None | Some(Ok(_))) = (&thrown, &outcome) {
                // The commit itself failed: nothing was written.
                return Err(StoreError(format!(
                    "transaction failed: {}",
                    e.as_string().unwrap_or_else(|| format!("{e:?}"))
                )));
            }
        }
        outcome.unwrap_or_else(|| Err(StoreError("the transaction did not run".into())))
    }
}
