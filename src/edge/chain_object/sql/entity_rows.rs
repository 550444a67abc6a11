//! The entities' current state behind `log::EntityStore`: one row per entity, keyed (and so
//! ordered) by its storage key, its state as stored (`log::entity::StoredState`, JSON). A fold
//! step merges each entity's patch into its row with `SQLite`'s `json_patch` in the insert
//! itself, reading nothing, and moves `meta.state_through` in the same transaction; triggers
//! keep the running totals, so the chain's numbers never count rows.

use serde::Deserialize;
use worker::SqlStorageValue;

use super::{int, ChainStorage, MAX_BOUND_PARAMETERS};
use crate::log::entity::{EntityTotals, EntityWrites, Swept, MAX_ENTITY_STATE_BYTES};
use crate::log::{EntityStore, Offset, StoreError};

/// The table, its totals and the triggers that keep them (`ChainStorage::create_schema`).
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS entity_states (key TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS entity_totals (
        id INTEGER PRIMARY KEY CHECK (id = 1), entities INTEGER NOT NULL, bytes INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO entity_totals (id, entities, bytes) VALUES (1, 0, 0)",
    "CREATE TRIGGER IF NOT EXISTS entity_added AFTER INSERT ON entity_states BEGIN
        UPDATE entity_totals SET entities = entities + 1, bytes = bytes + length(CAST(new.state AS BLOB)) WHERE id = 1;
     END",
    "CREATE TRIGGER IF NOT EXISTS entity_changed AFTER UPDATE OF state ON entity_states BEGIN
        UPDATE entity_totals
            SET bytes = bytes + length(CAST(new.state AS BLOB)) - length(CAST(old.state AS BLOB)) WHERE id = 1;
     END",
    "CREATE TRIGGER IF NOT EXISTS entity_removed AFTER DELETE ON entity_states BEGIN
        UPDATE entity_totals SET entities = entities - 1, bytes = bytes - length(CAST(old.state AS BLOB)) WHERE id = 1;
     END",
];

/// Parameters bound per merged row.
const PATCH_COLUMNS: usize = 2;

fn placeholders(rows: usize, row: &str) -> String {
    vec![row; rows].join(", ")
}

/// The statements of one fold step: removals first, then the merges. A new entity stores its
/// patch; an existing one merges it, unless its state reached the bound.
fn entity_statements(writes: &EntityWrites) -> Vec<(String, Vec<SqlStorageValue>)> {
    let mut statements = Vec::new();
    for chunk in writes.removals.chunks(MAX_BOUND_PARAMETERS) {
        let query = format!("DELETE FROM entity_states WHERE key IN ({})", placeholders(chunk.len(), "?"));
        statements.push((query, chunk.iter().map(|k| k.as_str().into()).collect()));
    }
    for chunk in writes.patches.chunks(MAX_BOUND_PARAMETERS / PATCH_COLUMNS) {
        let query = format!(
            "INSERT INTO entity_states (key, state) VALUES {} \
                ON CONFLICT(key) DO UPDATE SET state = json_patch(state, excluded.state) \
                WHERE length(entity_states.state) < {MAX_ENTITY_STATE_BYTES}",
            placeholders(chunk.len(), "(?, ?)")
        );
        let bindings = chunk.iter().flat_map(|(k, patch)| [k.as_str().into(), patch.as_str().into()]).collect();
        statements.push((query, bindings));
    }
    statements
}

impl EntityStore for ChainStorage {
    fn state_through(&self) -> Result<Offset, StoreError> {
        #[derive(Deserialize)]
        struct Through {
            value: u64,
        }
        let rows: Vec<Through> = self.rows("SELECT value FROM meta WHERE key = 'state_through'", Vec::new())?;
        Ok(rows.first().map_or(0, |r| r.value))
    }

    fn write_entities(&self, writes: &EntityWrites, through: Offset) -> Result<(), StoreError> {
        let statements = entity_statements(writes);
        self.atomically(|| {
            for (query, bindings) in statements {
                self.run(&query, bindings)?;
            }
            self.run(
                "INSERT INTO meta (key, value) VALUES ('state_through', ?) \
                    ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                vec![int(through)],
            )
        })
    }

    fn entity_range(&self, after: &str, before: &str, limit: usize) -> Result<Vec<(String, String)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            key: String,
            state: String,
        }
        let rows: Vec<Row> = self.rows(
            "SELECT key, state FROM entity_states WHERE key > ? AND key < ? ORDER BY key LIMIT ?",
            vec![after.into(), before.into(), int(limit as u64)],
        )?;
        Ok(rows.into_iter().map(|r| (r.key, r.state)).collect())
    }

    fn sweep_entities(&self, after: &str, limit: usize, cutoff: u64) -> Result<Swept, StoreError> {
        #[derive(Deserialize)]
        struct Looked {
            key: String,
        }
        const LOOKED_AT: &str = "SELECT key FROM entity_states WHERE key > ? ORDER BY key LIMIT ?";
        let looked: Vec<Looked> = self.rows(LOOKED_AT, vec![after.into(), int(limit as u64)])?;
        // Counted from what it returns: the rows written include the totals' trigger updates.
        let removed: Vec<Looked> = self.rows(
            &format!(
                "DELETE FROM entity_states WHERE key IN ({LOOKED_AT}) AND json_extract(state, '$.lastAt') < ? RETURNING key"
            ),
            vec![after.into(), int(limit as u64), int(cutoff)],
        )?;
        let removed = removed.len();
        let last = if looked.len() < limit { None } else { looked.last().map(|k| k.key.clone()) };
        Ok(Swept { removed, last })
    }

    fn entity_totals(&self) -> Result<EntityTotals, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            entities: u64,
            bytes: u64,
        }
        let rows: Vec<Row> = self.rows("SELECT entities, bytes FROM entity_totals WHERE id = 1", Vec::new())?;
        Ok(rows.first().map_or_else(EntityTotals::default, |r| EntityTotals { entities: r.entities, bytes: r.bytes }))
    }
}
