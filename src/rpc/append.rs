//! The batch as it travels from the Worker to the chain's object: each event's fields as
//! length-prefixed bytes. The object slices them rather than parsing JSON a second time;
//! it is the one place per chain that cannot scale out, so the Worker does the parsing
//! (including what an event says of its entity, for the state the object keeps).
//! Both ends are this crate, built and deployed together.

use crate::log::entity::EntityChange;
use crate::log::ValidEvent;

/// Bumped whenever the layout changes, so an object never misreads a batch.
const VERSION: u8 = 2;
const MINTED: u8 = 1;
/// Marks an element entry that carries a value (without it, the element is removed).
const HAS_VALUE: u8 = 1;

fn push_text(out: &mut Vec<u8>, text: &str) {
    // Fields are bounded far below 4 GiB by the publish limits.
    #[allow(clippy::cast_possible_truncation, reason = "bounded by the publish limits")]
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

pub fn encode_batch(events: &[ValidEvent]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| {
            1 + 36
                + e.unique_event_id.len()
                + e.hotel_id.len()
                + e.module_name.len()
                + e.event_name.len()
                + e.body.len()
                + e.entity.primary_key.len()
                + e.entity.timestamp.len()
                + e.entity.elements.iter().map(|(n, v)| 9 + n.len() + v.as_ref().map_or(0, String::len)).sum::<usize>()
        })
        .sum();
    let mut out = Vec::with_capacity(1 + size);
    out.push(VERSION);
    for e in events {
        out.push(if e.minted { MINTED } else { 0 });
        for field in [&e.unique_event_id, &e.hotel_id, &e.module_name, &e.event_name, &e.body] {
            push_text(&mut out, field);
        }
        push_text(&mut out, &e.entity.primary_key);
        push_text(&mut out, &e.entity.timestamp);
        #[allow(clippy::cast_possible_truncation, reason = "bounded by the publish limits")]
        out.extend_from_slice(&(e.entity.elements.len() as u32).to_le_bytes());
        for (name, value) in &e.entity.elements {
            push_text(&mut out, name);
            out.push(if value.is_some() { HAS_VALUE } else { 0 });
            if let Some(value) = value {
                push_text(&mut out, value);
            }
        }
    }
    out
}

/// Reads what [`encode_batch`] wrote, refusing anything cut short or of another version.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let (&b, after) = self.rest.split_first().ok_or("truncated batch")?;
        self.rest = after;
        Ok(b)
    }

    fn count(&mut self) -> Result<usize, String> {
        let (len, after) = self.rest.split_first_chunk::<4>().ok_or("truncated batch")?;
        self.rest = after;
        Ok(u32::from_le_bytes(*len) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.count()?;
        let (text, after) = self.rest.split_at_checked(len).ok_or("truncated batch")?;
        self.rest = after;
        Ok(text)
    }

    fn text(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|e| e.to_string())
    }
}

pub fn decode_batch(bytes: &[u8]) -> Result<Vec<ValidEvent>, String> {
    let mut reader = match bytes.split_first() {
        Some((&VERSION, rest)) => Reader { rest },
        Some((v, _)) => return Err(format!("batch format {v}, expected {VERSION}")),
        None => return Err("empty batch".into()),
    };
    let mut events = Vec::new();
    while !reader.rest.is_empty() {
        let flags = reader.byte()?;
        let mut event = ValidEvent {
            unique_event_id: reader.text()?,
            hotel_id: reader.text()?,
            module_name: reader.text()?,
            event_name: reader.text()?,
            body: reader.text()?,
            entity: EntityChange { primary_key: reader.text()?, timestamp: reader.text()?, elements: Vec::new() },
            minted: flags & MINTED != 0,
        };
        let elements = reader.count()?;
        // Each entry takes at least 5 bytes: a count the rest cannot hold is a bad batch.
        if elements > reader.rest.len() / 5 {
            return Err("truncated batch".into());
        }
        event.entity.elements.reserve(elements);
        for _ in 0..elements {
            let name = reader.text()?;
            let value = if reader.byte()? & HAS_VALUE != 0 { Some(reader.text()?) } else { None };
            event.entity.elements.push((name, value));
        }
        events.push(event);
    }
    Ok(events)
}
