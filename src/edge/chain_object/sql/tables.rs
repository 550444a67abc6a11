//! The object's own tables behind `chain::host::ChainTables`: saved cursors, the registry
//! of attached subscriptions, the chain code, webhook states, the last publish time.

use serde::Deserialize;

use super::{int, ChainStorage};
use crate::chain::host::ChainTables;
use crate::log::{Offset, StoreError};
use crate::webhook::WebhookState;

#[derive(Deserialize)]
struct Text {
    value: String,
}

impl ChainTables for ChainStorage {
    fn saved_cursor(&self, key: &str) -> Result<Option<(Offset, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            offset_delivered: u64,
            updated_at: u64,
        }
        let rows: Vec<Row> = self
            .rows("SELECT offset_delivered, updated_at FROM stream_cursors WHERE cursor_key = ?", vec![key.into()])?;
        Ok(rows.first().map(|r| (r.offset_delivered, r.updated_at)))
    }

    /// Only forward: a replay of old events that ends early must not make the next resume
    /// repeat what was read since.
    fn save_cursor(&self, key: &str, through: Offset, now_ms: u64) -> Result<(), StoreError> {
        self.run(
            "INSERT INTO stream_cursors (cursor_key, offset_delivered, updated_at) VALUES (?, ?, ?)
             ON CONFLICT(cursor_key) DO UPDATE SET
                 offset_delivered = MAX(offset_delivered, excluded.offset_delivered),
                 updated_at = excluded.updated_at",
            vec![key.into(), int(through), int(now_ms)],
        )
    }

    fn drop_cursors_before(&self, before: u64) -> Result<(), StoreError> {
        self.run("DELETE FROM stream_cursors WHERE updated_at < ?", vec![int(before)])
    }

    fn saved_cursors(&self, after: &str, limit: usize) -> Result<Vec<(String, Offset, u64)>, StoreError> {
        #[derive(Deserialize)]
        struct Row {
            cursor_key: String,
            offset_delivered: u64,
            updated_at: u64,
        }
        let rows: Vec<Row> = self.rows(
            "SELECT cursor_key, offset_delivered, updated_at FROM stream_cursors WHERE cursor_key > ? \
                ORDER BY cursor_key LIMIT ?",
            vec![after.into(), int(limit as u64)],
        )?;
        Ok(rows.into_iter().map(|r| (r.cursor_key, r.offset_delivered, r.updated_at)).collect())
    }

    fn register_subscription(&self, key: &str, spec_json: &str) -> Result<(), StoreError> {
        self.run("INSERT INTO subscriptions (key, spec) VALUES (?, ?)", vec![key.into(), spec_json.into()])
    }

    fn subscription(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows: Vec<Text> = self.rows("SELECT spec AS value FROM subscriptions WHERE key = ?", vec![key.into()])?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    fn unregister_subscription(&self, key: &str) -> Result<(), StoreError> {
        self.run("DELETE FROM subscriptions WHERE key = ?", vec![key.into()])
    }

    fn subscription_keys(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<Text> = self.rows("SELECT key AS value FROM subscriptions", Vec::new())?;
        Ok(rows.into_iter().map(|r| r.value).collect())
    }

    fn chain_code(&self) -> Result<Option<String>, StoreError> {
        let rows: Vec<Text> = self.rows("SELECT value FROM names WHERE key = 'chain'", Vec::new())?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    /// The object's name never changes: the first one stays.
    fn set_chain_code(&self, code: &str) -> Result<(), StoreError> {
        self.run("INSERT INTO names (key, value) VALUES ('chain', ?) ON CONFLICT(key) DO NOTHING", vec![code.into()])
    }

    fn webhook_state(&self, id: &str) -> Result<Option<WebhookState>, StoreError> {
        let rows: Vec<Text> = self.rows("SELECT state AS value FROM webhooks WHERE id = ?", vec![id.into()])?;
        rows.first().map(|r| serde_json::from_str(&r.value).map_err(|e| StoreError(e.to_string()))).transpose()
    }

    fn save_webhook_state(&self, id: &str, state: &WebhookState) -> Result<(), StoreError> {
        let json = serde_json::to_string(state).map_err(|e| StoreError(e.to_string()))?;
        self.run(
            "INSERT INTO webhooks (id, state) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state",
            vec![id.into(), json.into()],
        )
    }

    /// From the newest row, or from `meta` once retention deleted it (`RECORD_NEWEST`).
    fn last_publish_at(&self) -> Result<Option<u64>, StoreError> {
        #[derive(Deserialize)]
        struct At {
            at: Option<u64>,
        }
        let rows: Vec<At> = self.rows(
            "SELECT COALESCE(
                (SELECT stored_at FROM events ORDER BY seq DESC LIMIT 1),
                (SELECT value FROM meta WHERE key = 'last_publish_at')
            ) AS at",
            Vec::new(),
        )?;
        Ok(rows.first().and_then(|r| r.at))
    }
}
