//! The batch as it travels from the Worker to the chain's object: each event's fields as
//! length-prefixed bytes. The object slices them rather than parsing JSON a second time;
//! it is the one place per chain that cannot scale out, so the Worker does the parsing.
//! Both ends are this crate, built and deployed together.

use crate::log::ValidEvent;

/// Bumped whenever the layout changes, so an object never misreads a batch.
const VERSION: u8 = 1;
const MINTED: u8 = 1;

pub fn encode_batch(events: &[ValidEvent]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| {
            1 + 20
                + e.unique_event_id.len()
                + e.hotel_id.len()
                + e.module_name.len()
                + e.event_name.len()
                + e.body.len()
        })
        .sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(VERSION);
    for e in events {
        out.push(if e.minted { MINTED } else { 0 });
        for field in [&e.unique_event_id, &e.hotel_id, &e.module_name, &e.event_name, &e.body] {
            // Fields are bounded far below 4 GiB by the publish limits.
            #[allow(clippy::cast_possible_truncation, reason = "bounded by the publish limits")]
            out.extend_from_slice(&(field.len() as u32).to_le_bytes());
            out.extend_from_slice(field.as_bytes());
        }
    }
    out
}

pub fn decode_batch(bytes: &[u8]) -> Result<Vec<ValidEvent>, String> {
    let mut rest = match bytes.split_first() {
        Some((&VERSION, rest)) => rest,
        Some((v, _)) => return Err(format!("batch format {v}, expected {VERSION}")),
        None => return Err("empty batch".into()),
    };
    let mut events = Vec::new();
    while let Some((&flags, after)) = rest.split_first() {
        rest = after;
        let mut field = || -> Result<String, String> {
            let (len, after) = rest.split_first_chunk::<4>().ok_or("truncated batch")?;
            let len = u32::from_le_bytes(*len) as usize;
            let (text, after) = after.split_at_checked(len).ok_or("truncated batch")?;
            rest = after;
            String::from_utf8(text.to_vec()).map_err(|e| e.to_string())
        };
        events.push(ValidEvent {
            unique_event_id: field()?,
            hotel_id: field()?,
            module_name: field()?,
            event_name: field()?,
            body: field()?,
            minted: flags & MINTED != 0,
        });
    }
    Ok(events)
}
