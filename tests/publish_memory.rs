//! A hostile batch costs the parse a bounded amount of memory, whatever it holds: the body
//! limit bounds the bytes, and the event limit bounds what is built from them. Alone in its
//! binary, as the allocator it counts with is global.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::demo_config;
use pms_events::config::Limits;
use pms_events::publish::{validate_batch, BatchError};

/// The system allocator, keeping the peak of the bytes it has out.
struct PeakCounting;

static OUT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let out = OUT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(out, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        OUT.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout);
    }
}

#[global_allocator]
static ALLOCATOR: PeakCounting = PeakCounting;

/// The peak of memory allocated while judging `body`, over what was out before.
fn peak_while_judging(body: &[u8]) -> (usize, Result<usize, BatchError>) {
    let config = demo_config();
    let chain = config.chain("TTE").unwrap();
    let limits = Limits::default();
    let before = OUT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let outcome = validate_batch(body, chain, &limits, || "minted".to_string()).map(|events| events.len());
    (PEAK.load(Ordering::Relaxed) - before, outcome)
}

/// An array of as many `item`s as fit in `within` bytes, and how many that is.
fn repeated(item: &str, within: usize) -> (Vec<u8>, usize) {
    let count = (within - 2) / (item.len() + 1);
    (format!("[{}]", vec![item; count].join(",")).into_bytes(), count)
}

#[test]
fn a_megabyte_of_events_over_the_count_limit_is_refused_without_building_them() {
    let limit = Limits::default().max_batch_bytes;
    let event = r#"{"moduleName":"R","eventName":"C","primaryKey":"P","timestamp":"2026-11-27T10:00:00Z","hotelId":"TTE01","detail":[]}"#;
    for (what, (body, count)) in [
        ("well-formed events", repeated(event, limit)),
        ("empty objects", repeated("{}", limit)),
        ("numbers", repeated("1", limit)),
    ] {
        let (peak, outcome) = peak_while_judging(&body);
        let err = outcome.expect_err(what);
        assert_eq!(err.status(), 413, "{what}: {err:?}");
        assert!(format!("{err:?}").contains(&format!("holds {count} events")), "{what}: the exact count, {err:?}");
        // 500 events kept at most (a few hundred bytes each as borrowed shapes).
        assert!(peak < 512 * 1024, "{what}: {peak} bytes allocated for a {}-byte body", body.len());
    }
    // A full batch of 500 is still accepted, so the bound is not paid for by refusing work.
    let (_, outcome) = peak_while_judging(&repeated(event, event.len() * 500 + 600).0);
    assert_eq!(outcome.unwrap(), 500);
}
