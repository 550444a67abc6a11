//! All of the chain object's SQL: the log's rows behind `log::LogStore` (`log_rows`), the
//! entities' current state behind `log::EntityStore` (`entity_rows`), and
//! the object's own tables behind `chain::host::ChainTables` (`tables`): saved cursors,
//! attached subscriptions, its chain code, webhook states. SQL `exec` is synchronous, so
//! every method completes within the caller's turn.

mod entity_rows;
mod log_rows;
mod tables;

use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;
use worker::{Result, SqlStorage, SqlStorageValue};

use crate::log::StoreError;

/// Durable Object SQL binds at most 100 parameters per statement
/// (<https://developers.cloudflare.com/durable-objects/platform/limits/>).
const MAX_BOUND_PARAMETERS: usize = 100;

// `storage.transactionSync(fn)` commits what `fn` wrote, or rolls it all back if `fn` throws.
// The Rust body answers whether to commit; this wrapper throws for it, so no exception ever
// unwinds through wasm frames.
#[wasm_bindgen(inline_js = "export function transaction_sync(storage, body) { \
        storage.transactionSync(() => { if (!body()) { throw new Error('rolled back'); } }); }")]
extern "C" {
    #[wasm_bindgen(catch)]
    fn transaction_sync(storage: &JsValue, body: &js_sys::Function) -> std::result::Result<(), JsValue>;
}

/// The chain object's `SQLite` storage.
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
        // `spec::cursor_key`). It only moves forward.
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
        // Each entity's current state (`log::entity`), in key order for the state API's pages.
        for statement in entity_rows::SCHEMA {
            sql.exec(statement, None)?;
        }
        Ok(())
    }

    /// The rows a statement returns.
    fn rows<T: DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> std::result::Result<Vec<T>, StoreError> {
        self.sql.exec(query, Some(bindings)).and_then(|c| c.to_array()).map_err(store_err)
    }

    /// Runs a statement that returns nothing of interest.
    fn run(&self, query: &str, bindings: Vec<SqlStorageValue>) -> std::result::Result<(), StoreError> {
        self.sql.exec(query, Some(bindings)).map(|_| ()).map_err(store_err)
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
