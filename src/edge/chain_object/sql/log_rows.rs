//! The log's rows: the events table behind `log::LogStore`.

use std::collections::HashMap;

use serde::Deserialize;
use wasm_bindgen::JsValue;

use super::{int, store_err, ChainStorage, MAX_BOUND_PARAMETERS};
use crate::log::event_id::index_key;
use crate::log::{LogStore, NewEvent, Offset, StoreError, StoredEvent};
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

/// The newest event a retention pass is about to delete (its offset and time), for a replay
/// from a time to know when events it asks for were dropped (`LogStore::dropped_through`).
const RECORD_DROPPED: &str =
    "WITH doomed AS (SELECT seq, stored_at FROM events WHERE stored_at < ? AND seq <= ? ORDER BY seq LIMIT ?), \
        newest AS (SELECT seq, stored_at FROM doomed ORDER BY seq DESC LIMIT 1) \
    INSERT INTO meta (key, value) \
        SELECT 'dropped_offset', seq FROM newest WHERE true \
        UNION ALL SELECT 'dropped_at', stored_at FROM newest WHERE true \
    ON CONFLICT(key) DO UPDATE SET value = excluded.value";

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

    fn first_stored_at_or_after(&self, at: u64) -> std::result::Result<Option<Offset>, StoreError> {
        #[derive(Deserialize)]
        struct S {
            seq: u64,
        }
        let rows: Vec<S> =
            self.rows("SELECT seq FROM events WHERE stored_at >= ? ORDER BY stored_at, seq LIMIT 1", vec![int(at)])?;
        Ok(rows.first().map(|r| r.seq))
    }

    fn dropped_through(&self) -> std::result::Result<Option<(Offset, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            key: String,
            value: u64,
        }
        let rows: Vec<Row> =
            self.rows("SELECT key, value FROM meta WHERE key IN ('dropped_offset', 'dropped_at')", Vec::new())?;
        let get = |name: &str| rows.iter().find(|r| r.key == name).map(|r| r.value);
        Ok(get("dropped_offset").zip(get("dropped_at")))
    }

    fn delete_stored_before(
        &self,
        cutoff: u64,
        through: Offset,
        limit: usize,
    ) -> std::result::Result<usize, StoreError> {
        self.sql.exec(RECORD_NEWEST, vec![int(cutoff), int(cutoff)]).map_err(store_err)?;
        self.sql.exec(RECORD_DROPPED, vec![int(cutoff), int(through), int(limit as u64)]).map_err(store_err)?;
        self.sql
            .exec(
                "DELETE FROM events WHERE seq IN \
                    (SELECT seq FROM events WHERE stored_at < ? AND seq <= ? ORDER BY seq LIMIT ?)",
                vec![int(cutoff), int(through), int(limit as u64)],
            )
            .map(|c| c.rows_written())
            .map_err(store_err)
    }
}
