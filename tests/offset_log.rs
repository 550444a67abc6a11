//! The offset log's rules, against the in-memory reference store.

use pms_events::log::{retention_slack, LogStore, MemoryStore, OffsetLog, RETENTION_BATCH};
use pms_events::publish::ValidEvent;

fn event(id: &str) -> ValidEvent {
    ValidEvent {
        unique_event_id: id.into(),
        hotel_id: "TTE01".into(),
        module_name: "Reservation".into(),
        event_name: "CHECKIN".into(),
        body: format!("{{\"id\":\"{id}\"}}"),
        minted: false,
    }
}

#[test]
fn offsets_start_at_one_and_are_gapless_across_batches() {
    let log = OffsetLog::new(MemoryStore::default());
    assert_eq!(log.append(&[event("a"), event("b")], 1).unwrap(), vec![1, 2]);
    assert_eq!(log.append(&[event("c")], 2).unwrap(), vec![3]);
    let stats = log.bounds().unwrap();
    assert_eq!((stats.head_offset, stats.oldest_offset, stats.retained_events()), (3, Some(1), 3));
}

#[test]
fn duplicate_unique_event_id_returns_the_original_offset() {
    let log = OffsetLog::new(MemoryStore::default());
    log.append(&[event("a"), event("b")], 1).unwrap();
    assert_eq!(log.append(&[event("b"), event("c"), event("c")], 2).unwrap(), vec![2, 3, 3]);
    assert_eq!(log.bounds().unwrap().retained_events(), 3);
}

#[test]
fn read_page_is_bounded_by_count_and_bytes() {
    let log = OffsetLog::new(MemoryStore::default());
    let batch: Vec<ValidEvent> = (0..10).map(|i| event(&format!("e{i}"))).collect();
    log.append(&batch, 1).unwrap();
    let page = log.read_page(3, 4, 1_000_000).unwrap();
    assert_eq!(page.events.iter().map(|e| e.offset).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
    assert_eq!(page.next, 7);
    assert!(!page.at_end, "more is stored");
    assert!(log.read_page(7, 10, 1_000_000).unwrap().at_end);
    assert!(!log.read_page(1, 10, 1).unwrap().at_end, "cut by bytes is not the end");
    let body_len = batch[0].body.len();
    let page = log.read_page(1, 10, body_len * 2).unwrap();
    assert_eq!(page.events.len(), 2);
    // One event is always returned, however small the byte budget.
    assert_eq!(log.read_page(1, 10, 1).unwrap().events.len(), 1);
    let end = log.read_page(11, 10, 1000).unwrap();
    assert!(end.events.is_empty());
    assert_eq!(end.next, 11);
}

#[test]
fn retention_drops_expired_events_in_bounded_batches_and_keeps_the_head() {
    let log = OffsetLog::new(MemoryStore::default());
    let old: Vec<ValidEvent> = (0..RETENTION_BATCH + 5).map(|i| event(&format!("old{i}"))).collect();
    log.append(&old, 1_000).unwrap();
    log.append(&[event("new")], 50_000).unwrap();
    let retention = 10_000;
    let first = log.apply_retention(20_000, retention).unwrap();
    assert_eq!(first.deleted, RETENTION_BATCH);
    assert_eq!(first.next_alarm, Some(20_000), "more to delete: run again at once");
    let second = log.apply_retention(20_000, retention).unwrap();
    assert_eq!(second.deleted, 5);
    assert_eq!(second.next_alarm, Some(61_000), "the newest event's expiry, plus a tenth of the retention");
    let stats = log.bounds().unwrap();
    assert_eq!(stats.head_offset, RETENTION_BATCH as u64 + 6);
    assert_eq!(stats.oldest_offset, Some(RETENTION_BATCH as u64 + 6));
    assert_eq!(stats.retained_events(), 1);
    // Numbering continues after retention emptied part of the log.
    assert_eq!(log.append(&[event("after")], 60_000).unwrap(), vec![RETENTION_BATCH as u64 + 7]);
}

#[test]
fn empty_log_after_retention_keeps_numbering() {
    let log = OffsetLog::new(MemoryStore::default());
    log.append(&[event("a")], 0).unwrap();
    let r = log.apply_retention(100, 10).unwrap();
    assert_eq!((r.deleted, r.next_alarm), (1, None));
    assert_eq!(log.bounds().unwrap().oldest_offset, None);
    assert_eq!(log.store().head().unwrap(), 1);
    assert_eq!(log.append(&[event("b")], 200).unwrap(), vec![2]);
}

#[test]
fn a_steady_stream_expires_in_a_few_runs_not_one_per_event() {
    let log = OffsetLog::new(MemoryStore::default());
    let retention = 10_000;
    // One event every 10 ms for 20 s.
    for i in 0..2_000u64 {
        log.append(&[event(&format!("e{i}"))], i * 10).unwrap();
    }
    let mut at = log.next_expiry(retention).unwrap().unwrap();
    assert_eq!(at, retention + retention_slack(retention), "the first event's expiry plus the slack");
    let mut runs = 0;
    let mut deleted = 0;
    while at <= 20_000 + retention {
        let outcome = log.apply_retention(at, retention).unwrap();
        runs += 1;
        deleted += outcome.deleted;
        let next = outcome.next_alarm.unwrap_or(u64::MAX);
        assert!(next >= at + retention_slack(retention) || outcome.deleted == RETENTION_BATCH, "runs are spaced");
        // Each run leaves only unexpired events, and runs at most `slack` after the oldest
        // left expires: nothing outlives retention + slack.
        if let Some(oldest) = log.bounds().unwrap().oldest_offset {
            let stored_at = (oldest - 1) * 10;
            assert!(stored_at + retention >= at);
            assert_eq!(next, stored_at + retention + retention_slack(retention));
        }
        at = next;
    }
    assert_eq!(deleted, 2_000);
    assert!(runs <= 25, "{runs} runs for 2,000 events");
    assert_eq!(retention_slack(7 * 24 * 3_600_000), 60_000, "a week's retention: a minute late at most");
}

/// A store that records the ids it is asked to look up, and whose insert can be made to
/// report a failure after the rows went in (the answer lost, not the write).
struct Probe {
    inner: MemoryStore,
    fail: std::cell::Cell<bool>,
    asked: std::cell::RefCell<Vec<String>>,
}

impl Probe {
    fn new() -> Self {
        Probe { inner: MemoryStore::default(), fail: false.into(), asked: Default::default() }
    }
}

impl LogStore for Probe {
    fn head(&self) -> Result<u64, pms_events::log::StoreError> {
        self.inner.head()
    }
    fn offsets_of(&self, ids: &[&str]) -> Result<std::collections::HashMap<String, u64>, pms_events::log::StoreError> {
        self.asked.borrow_mut().extend(ids.iter().map(|id| id.to_string()));
        self.inner.offsets_of(ids)
    }
    fn insert_all(&self, events: &[pms_events::log::NewEvent<'_>]) -> Result<(), pms_events::log::StoreError> {
        self.inner.insert_all(events)?;
        if self.fail.get() {
            return Err(pms_events::log::StoreError("the object reset before it answered".into()));
        }
        Ok(())
    }
    fn oldest(&self) -> Result<Option<(u64, u64)>, pms_events::log::StoreError> {
        self.inner.oldest()
    }
    fn read_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<pms_events::log::StoredEvent>, pms_events::log::StoreError> {
        self.inner.read_from(from, limit)
    }
    fn delete_stored_before(
        &self,
        cutoff: u64,
        through: u64,
        limit: usize,
    ) -> Result<usize, pms_events::log::StoreError> {
        self.inner.delete_stored_before(cutoff, through, limit)
    }
    fn first_stored_at_or_after(&self, at: u64) -> Result<Option<u64>, pms_events::log::StoreError> {
        self.inner.first_stored_at_or_after(at)
    }
    fn dropped_through(&self) -> Result<Option<(u64, u64)>, pms_events::log::StoreError> {
        self.inner.dropped_through()
    }
}

#[test]
fn a_batch_that_fails_midway_leaves_no_event_stored_and_numbering_goes_on() {
    let log = OffsetLog::new(MemoryStore::default());
    assert_eq!(log.append(&[event("a"), event("b")], 1).unwrap(), vec![1, 2]);
    // The third row of five fails: the two before it must not stay.
    log.store().fail_insert_after.set(Some(2));
    let batch: Vec<ValidEvent> = ["c", "d", "e", "f", "g"].iter().map(|id| event(id)).collect();
    assert!(log.append(&batch, 2).is_err());
    log.store().fail_insert_after.set(None);
    assert_eq!(log.bounds().unwrap().retained_events(), 2, "nothing of the failed batch is stored");
    assert_eq!(log.head().unwrap(), 2);
    assert!(log.read_page(3, 100, 1 << 20).unwrap().events.is_empty(), "nothing to deliver");
    // The publisher's resend is stored whole, right after the last stored offset.
    assert_eq!(log.append(&batch, 3).unwrap(), vec![3, 4, 5, 6, 7]);
}

#[test]
fn a_failed_append_never_lets_the_next_one_reuse_offsets() {
    let log = OffsetLog::new(Probe::new());
    assert_eq!(log.append(&[event("a"), event("b")], 1).unwrap(), vec![1, 2]);
    assert_eq!(log.head().unwrap(), 2, "kept in memory after an append");
    // The rows of this batch go in, then the append fails: the publisher gets an error
    // (nothing acknowledged) and the log must not hand out 3 and 4 again.
    log.store().fail.set(true);
    assert!(log.append(&[event("c"), event("d")], 2).is_err());
    log.store().fail.set(false);
    assert_eq!(log.head().unwrap(), 4, "re-read from storage, which knows the rows");
    // A retry of the failed batch finds its events; a new event comes after them.
    assert_eq!(log.append(&[event("c"), event("d"), event("e")], 3).unwrap(), vec![3, 4, 5]);
    assert_eq!(log.bounds().unwrap().retained_events(), 5);
}

#[test]
fn ids_minted_for_the_request_are_not_looked_up_and_a_retry_looks_them_up() {
    let log = OffsetLog::new(Probe::new());
    let minted = |id: &str| ValidEvent { minted: true, ..event(id) };
    assert_eq!(log.append(&[minted("m1"), minted("m2")], 1).unwrap(), vec![1, 2]);
    assert!(log.store().asked.borrow().is_empty(), "no lookup for a batch of minted ids");
    assert_eq!(log.append(&[minted("m3"), event("own-1")], 2).unwrap(), vec![3, 4]);
    assert_eq!(*log.store().asked.borrow(), ["own-1"], "only the publisher's own id");
    // A retried append carries the same ids, no longer marked minted: found, not stored twice.
    assert_eq!(log.append(&[event("m2"), event("m3")], 3).unwrap(), vec![2, 3]);
    assert_eq!(log.bounds().unwrap().retained_events(), 4);
}

/// The chain's numbers (the dashboard asks every 2 s) come from the head and the oldest
/// event: the same few rows read for a log of ten events as for one of twenty thousand.
#[test]
fn the_numbers_of_a_long_log_read_no_more_rows_than_those_of_a_short_one() {
    let rows_read_for = |events: usize| {
        let store = std::rc::Rc::new(MemoryStore::default());
        let log = OffsetLog::new(store.clone());
        for chunk in 0..events.div_ceil(500) {
            let batch: Vec<_> = (0..500.min(events - chunk * 500)).map(|i| event(&format!("e{chunk}-{i}"))).collect();
            log.append(&batch, 1).unwrap();
        }
        // A new instance of the object: nothing cached.
        let restarted = OffsetLog::new(store.clone());
        let before = store.rows_read.get();
        let bounds = restarted.bounds().unwrap();
        assert_eq!(bounds.retained_events(), events as u64);
        store.rows_read.get() - before
    };
    assert_eq!(rows_read_for(10), rows_read_for(20_000));
    assert!(rows_read_for(20_000) <= 2, "the head and the oldest event");
}
