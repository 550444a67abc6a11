//! `GET /admin/v1/metrics`: the figures of the chains an operator may see, then the service's
//! counts as the operator's enterprise may see them (`service_tally`), in the Prometheus text
//! exposition format (version 0.0.4, which Prometheus and `promtool check metrics` read).
//! Labels are bounded by the configuration and the service's own routes and codes, never by
//! connections. Names and meanings: docs/operations.md, Consumers and metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::rpc::operators::ChainMetrics;
use crate::service_tally::{Counts, Tally};

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One sample: its labels (name, value) and its value.
type Sample = (Vec<(&'static str, String)>, f64);

/// One metric family: its name, type, help, and how each chain gives its samples.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: fn(&ChainMetrics, &mut Vec<Sample>),
}

#[allow(clippy::cast_precision_loss, reason = "Prometheus samples are doubles; counts stay far below 2^53")]
fn n(value: u64) -> f64 {
    value as f64
}

fn chain(m: &ChainMetrics) -> Vec<(&'static str, String)> {
    vec![("chain", m.numbers.chain_code.clone())]
}

const FAMILIES: &[Family] = &[
    Family {
        name: "pms_events_chain_head_offset",
        kind: "gauge",
        help: "The chain's newest offset.",
        samples: |m, out| out.push((chain(m), n(m.numbers.head_offset))),
    },
    Family {
        name: "pms_events_published_events_total",
        kind: "counter",
        help: "Events ever published on the chain (offsets are contiguous from 1).",
        samples: |m, out| out.push((chain(m), n(m.numbers.head_offset))),
    },
    Family {
        name: "pms_events_retained_events",
        kind: "gauge",
        help: "Events the chain still stores.",
        samples: |m, out| out.push((chain(m), n(m.numbers.retained_events))),
    },
    Family {
        name: "pms_events_last_publish_timestamp_seconds",
        kind: "gauge",
        help: "When the chain's newest event was published (absent before the first).",
        samples: |m, out| {
            if let Some(at) = m.numbers.last_publish_at {
                out.push((chain(m), n(at) / 1000.0));
            }
        },
    },
    Family {
        name: "pms_events_deliveries_total",
        kind: "counter",
        help:
            "Event frames the chain's object sent to subscriptions since it started (a deploy or restart starts again).",
        samples: |m, out| out.push((chain(m), n(m.numbers.deliveries))),
    },
    Family {
        name: "pms_events_subscribers",
        kind: "gauge",
        help: "Subscriptions attached to the chain.",
        samples: |m, out| out.push((chain(m), n(m.numbers.subscribers as u64))),
    },
    Family {
        name: "pms_events_consumer_lag_events",
        kind: "gauge",
        help: "Per client, events published and not yet delivered to its furthest-behind attached subscription.",
        samples: |m, out| {
            for (client, lag) in &m.consumer_lag {
                out.push((vec![("chain", m.numbers.chain_code.clone()), ("client_id", client.clone())], n(*lag)));
            }
        },
    },
    Family {
        name: "pms_events_webhook_lag_events",
        kind: "gauge",
        help: "Per webhook, events published after the last one its receiver accepted.",
        samples: |m, out| {
            for (id, w) in &m.webhooks {
                out.push((vec![("chain", m.numbers.chain_code.clone()), ("webhook", id.clone())], n(w.lag_events)));
            }
        },
    },
    Family {
        name: "pms_events_webhook_paused",
        kind: "gauge",
        help: "1 while a webhook is paused after failing past its window, else 0.",
        samples: |m, out| {
            for (id, w) in &m.webhooks {
                out.push((
                    vec![("chain", m.numbers.chain_code.clone()), ("webhook", id.clone())],
                    n(u64::from(w.paused)),
                ));
            }
        },
    },
    Family {
        name: "pms_events_state_entities",
        kind: "gauge",
        help: "Entities whose current state the chain keeps.",
        samples: |m, out| out.push((chain(m), n(m.numbers.entities.entities))),
    },
    Family {
        name: "pms_events_state_bytes",
        kind: "gauge",
        help: "Bytes of the entities' stored state.",
        samples: |m, out| out.push((chain(m), n(m.numbers.entities.bytes))),
    },
    Family {
        name: "pms_events_state_lag_events",
        kind: "gauge",
        help: "Events published and not yet folded into the entities' state.",
        samples: |m, out| out.push((chain(m), n(m.numbers.head_offset.saturating_sub(m.numbers.state_through)))),
    },
];

/// A label value as the format quotes it.
fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn write_sample(out: &mut String, name: &str, labels: &[(&str, String)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape(value, out);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A counter family of one label over `counts`.
fn write_counts(out: &mut String, name: &str, help: &str, label: &str, counts: &Counts) {
    write_header(out, name, "counter", help);
    for (key, value) in counts {
        write_sample(out, name, &[(label, key.clone())], n(*value));
    }
}

/// A counter family of two labels over `counts` (first label, then second).
fn write_nested_counts(out: &mut String, name: &str, help: &str, labels: [&str; 2], counts: &BTreeMap<String, Counts>) {
    write_header(out, name, "counter", help);
    for (first, inner) in counts {
        for (second, value) in inner {
            write_sample(out, name, &[(labels[0], first.clone()), (labels[1], second.clone())], n(*value));
        }
    }
}

/// The service's own families: what every isolate of the Worker counted, summed, as the admin
/// may see them (`ServiceTally::seen_by`).
fn render_service(tally: &Tally, out: &mut String) {
    write_nested_counts(
        out,
        "pms_events_http_responses_total",
        "HTTP answers by route and status (101: an accepted WebSocket upgrade); 4xx are refusals.",
        ["route", "code"],
        &tally.responses,
    );
    write_nested_counts(
        out,
        "pms_events_connections_closed_total",
        "WebSocket connections closed, by who closed them and the close code.",
        ["by", "code"],
        &tally.closes,
    );
    write_counts(
        out,
        "pms_events_slow_consumer_closes_total",
        "Connections the service closed (4413) because the client did not read what it was sent, by client.",
        "client_id",
        &tally.slow_consumer_closes,
    );
    write_counts(
        out,
        "pms_events_subscriptions_refused_total",
        "Subscriptions refused, by error code.",
        "code",
        &tally.subscriptions_refused,
    );
    let name = "pms_events_publish_duration_seconds";
    write_header(
        out,
        name,
        "histogram",
        "From a publish request's arrival to its acknowledgement, accepted publishes.",
    );
    let histogram = &tally.publish_duration;
    for (bound, count) in histogram.cumulative() {
        let le = bound.map_or_else(|| "+Inf".to_string(), |b| b.to_string());
        write_sample(out, &format!("{name}_bucket"), &[("le", le)], n(count));
    }
    write_sample(out, &format!("{name}_sum"), &[], n(histogram.sum_ms) / 1000.0);
    write_sample(out, &format!("{name}_count"), &[], n(histogram.count));
}

/// The exposition of `chains`, family by family, then the service's counts in `tally`.
pub fn render(chains: &[ChainMetrics], tally: &Tally) -> String {
    let mut out = String::new();
    let mut samples = Vec::new();
    for family in FAMILIES {
        write_header(&mut out, family.name, family.kind, family.help);
        for chain in chains {
            samples.clear();
            (family.samples)(chain, &mut samples);
            for (labels, value) in &samples {
                write_sample(&mut out, family.name, labels, *value);
            }
        }
    }
    render_service(tally, &mut out);
    out
}
