//! `GET /admin/v1/metrics`: the figures of the chains an operator may see, in the Prometheus
//! text exposition format (version 0.0.4, which Prometheus and `promtool check metrics`
//! read). Labels are the chain, the client id and the webhook id: bounded by the
//! configuration, never by connections. Names and meanings: docs/operations.md, Metrics.

use std::fmt::Write as _;

use crate::rpc::operators::ChainMetrics;

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

/// The exposition of `chains`, family by family.
pub fn render(chains: &[ChainMetrics]) -> String {
    let mut out = String::new();
    let mut samples = Vec::new();
    for family in FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for chain in chains {
            samples.clear();
            (family.samples)(chain, &mut samples);
            for (labels, value) in &samples {
                out.push_str(family.name);
                out.push('{');
                for (i, (name, value)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                    out.push_str("=\"");
                    escape(value, &mut out);
                    out.push('"');
                }
                let _ = writeln!(out, "}} {value}");
            }
        }
    }
    out
}
