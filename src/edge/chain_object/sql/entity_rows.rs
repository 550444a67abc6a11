//! The entities' current state behind `log::EntityStore`: one row per entity, keyed (and so
//! ordered) by hotel, module and primary key, its state text as the state API serves it, and
//! when its last event was stored (indexed, for state retention). The running totals are two
//! `meta` rows, moved by each write, so the chain's numbers never count rows.

use serde::Deserialize;
use worker::SqlStorageValue;

use super::{int, ChainStorage, MAX_BOUND_PARAMETERS};
use crate::log::entity::{EntityKey, EntityTotals, EntityWrites};
use crate::log::{EntityStore, StoreError};

/// Parameters bound per key in a lookup or delete, and per row in an upsert.
const KEY_COLUMNS: usize = 3;
const UPSERT_COLUMNS: usize = 5;

#[derive(Deserialize)]
struct KeyedState {
    hotel_id: String,
    module_name: String,
    primary_key: String,
    state: String,
}

fn key_values(key: &EntityKey) -> [SqlStorageValue; KEY_COLUMNS] {
    [key.hotel_id.as_str().into(), key.module_name.as_str().into(), key.primary_key.as_str().into()]
}

fn row_values(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// The statements that write an append's entity states, for `insert_all` to run with its
/// events in one transaction.
pub(super) fn entity_statements(entities: &EntityWrites) -> Vec<(String, Vec<SqlStorageValue>)> {
    let mut statements = Vec::new();
    let (puts, removals): (Vec<_>, Vec<_>) = entities.writes.iter().partition(|w| w.state.is_some());
    for chunk in puts.chunks(MAX_BOUND_PARAMETERS / UPSERT_COLUMNS) {
        let query = format!(
            "INSERT INTO entities (hotel_id, module_name, primary_key, last_at, state) VALUES {} \
                ON CONFLICT(hotel_id, module_name, primary_key) DO UPDATE SET \
                    last_at = excluded.last_at, state = excluded.state",
            row_values(chunk.len(), UPSERT_COLUMNS)
        );
        let mut bindings = Vec::with_capacity(chunk.len() * UPSERT_COLUMNS);
        for w in chunk {
            bindings.extend(key_values(&w.key));
            bindings.push(int(w.last_at));
            bindings.push(w.state.as_deref().unwrap_or_default().into());
        }
        statements.push((query, bindings));
    }
    for chunk in removals.chunks(MAX_BOUND_PARAMETERS / KEY_COLUMNS) {
        let query = format!(
            "DELETE FROM entities WHERE (hotel_id, module_name, primary_key) IN (VALUES {})",
            row_values(chunk.len(), KEY_COLUMNS)
        );
        statements.push((query, chunk.iter().flat_map(|w| key_values(&w.key)).collect()));
    }
    if entities.count_delta != 0 || entities.bytes_delta != 0 {
        statements.push(move_totals(entities.count_delta, entities.bytes_delta));
    }
    statements
}

/// Moves the running totals by the given deltas.
fn move_totals(count: i64, bytes: i64) -> (String, Vec<SqlStorageValue>) {
    (
        "INSERT INTO meta (key, value) VALUES ('entities', ?), ('entity_bytes', ?) \
            ON CONFLICT(key) DO UPDATE SET value = MAX(0, value + excluded.value)"
            .into(),
        vec![SqlStorageValue::from(count), SqlStorageValue::from(bytes)],
    )
}

impl EntityStore for ChainStorage {
    fn entity_states(&self, keys: &[&EntityKey]) -> Result<Vec<(EntityKey, String)>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_BOUND_PARAMETERS / KEY_COLUMNS) {
            let query = format!(
                "SELECT hotel_id, module_name, primary_key, state FROM entities \
                    WHERE (hotel_id, module_name, primary_key) IN (VALUES {})",
                row_values(chunk.len(), KEY_COLUMNS)
            );
            let rows: Vec<KeyedState> = self.rows(&query, chunk.iter().flat_map(|k| key_values(k)).collect())?;
            found.extend(rows.into_iter().map(|r| {
                let key = EntityKey { hotel_id: r.hotel_id, module_name: r.module_name, primary_key: r.primary_key };
                (key, r.state)
            }));
        }
        Ok(found)
    }

    fn entity_range(
        &self,
        hotel_id: &str,
        module_name: Option<&str>,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        #[derive(Deserialize)]
        struct State {
            state: String,
        }
        let mut bindings: Vec<SqlStorageValue> = vec![hotel_id.into(), after.0.into(), after.1.into()];
        let module_filter = match module_name {
            Some(m) => {
                bindings.push(m.into());
                " AND module_name = ?"
            }
            None => "",
        };
        bindings.push(int(limit as u64));
        let rows: Vec<State> = self.rows(
            &format!(
                "SELECT state FROM entities WHERE hotel_id = ? AND (module_name, primary_key) > (?, ?){module_filter} \
                    ORDER BY module_name, primary_key LIMIT ?"
            ),
            bindings,
        )?;
        Ok(rows.into_iter().map(|r| r.state).collect())
    }

    fn delete_entities_before(&self, cutoff: u64, limit: usize) -> Result<usize, StoreError> {
        #[derive(Deserialize)]
        struct Doomed {
            n: i64,
            bytes: i64,
        }
        const DOOMED: &str = "SELECT hotel_id, module_name, primary_key, state FROM entities \
            WHERE last_at < ? ORDER BY last_at LIMIT ?";
        self.atomically(|| {
            let counted: Vec<Doomed> = self.rows(
                &format!(
                    "SELECT COUNT(*) AS n, COALESCE(SUM(length(CAST(state AS BLOB))), 0) AS bytes FROM ({DOOMED})"
                ),
                vec![int(cutoff), int(limit as u64)],
            )?;
            let Some(&Doomed { n, bytes }) = counted.first() else { return Ok(0) };
            if n == 0 {
                return Ok(0);
            }
            self.run(
                &format!(
                    "DELETE FROM entities WHERE (hotel_id, module_name, primary_key) IN \
                        (SELECT hotel_id, module_name, primary_key FROM ({DOOMED}))"
                ),
                vec![int(cutoff), int(limit as u64)],
            )?;
            let (query, bindings) = move_totals(-n, -bytes);
            self.run(&query, bindings)?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn oldest_entity_at(&self) -> Result<Option<u64>, StoreError> {
        #[derive(Deserialize)]
        struct At {
            last_at: u64,
        }
        let rows: Vec<At> = self.rows("SELECT last_at FROM entities ORDER BY last_at LIMIT 1", Vec::new())?;
        Ok(rows.first().map(|r| r.last_at))
    }

    fn entity_totals(&self) -> Result<EntityTotals, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            key: String,
            value: u64,
        }
        let rows: Vec<Row> =
            self.rows("SELECT key, value FROM meta WHERE key IN ('entities', 'entity_bytes')", Vec::new())?;
        let get = |name: &str| rows.iter().find(|r| r.key == name).map_or(0, |r| r.value);
        Ok(EntityTotals { entities: get("entities"), bytes: get("entity_bytes") })
    }
}
