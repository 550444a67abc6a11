//! `uniqueEventId`s: the ones the service generates, and the integer key a chain log
//! indexes them by.
//!
//! Generated ids are `UUIDv7` (RFC 9562): 48 bits of Unix milliseconds, then random bits.
//! The index key of a `UUIDv7` keeps that time order, so a batch's keys land together at the
//! right edge of the log's id index: one or two index pages change per batch instead of
//! one page per event, which is what random keys cost once the log is large (measured on
//! workerd: ~17 µs of runtime CPU per event in batches of 100, the largest single cost of a
//! publish). Publishers that send their own `UUIDv7` ids get the same locality; any other id
//! is keyed by a hash.

/// The stored index key of a `uniqueEventId`, always below 2^52 so it travels exactly as a
/// JS number. Ids with equal keys are told apart by comparing the ids in full, so a key
/// only has to be cheap and well spread, not unique. Persisted in every log: it must never
/// change.
pub fn index_key(id: &str) -> u64 {
    match uuid_v7_parts(id) {
        Some((millis, random)) => time_key(millis, random),
        None => fnv1a_52(id),
    }
}

/// 37 bits of time in 16 ms steps, then 15 random bits. The time part wraps every 2^41 ms
/// (70 years); a wrap costs locality once, never correctness.
fn time_key(millis: u64, random: u64) -> u64 {
    const TIME_BITS: u32 = 37;
    const RANDOM_BITS: u32 = 15;
    (((millis >> 4) & ((1 << TIME_BITS) - 1)) << RANDOM_BITS) | (random & ((1 << RANDOM_BITS) - 1))
}

/// FNV-1a (64-bit), cut to 52 bits.
fn fnv1a_52(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h & ((1 << 52) - 1)
}

/// The timestamp and the last 16 random bits of a `UUIDv7` in its 8-4-4-4-12 hex form
/// (either case), or `None` for anything else.
fn uuid_v7_parts(id: &str) -> Option<(u64, u64)> {
    let b = id.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let version = b[14];
    let variant = b[19].to_ascii_lowercase();
    if version != b'7' || !matches!(variant, b'8' | b'9' | b'a' | b'b') {
        return None;
    }
    let hex = |range: std::ops::Range<usize>| -> Option<u64> {
        b[range].iter().try_fold(0u64, |acc, &c| Some((acc << 4) | u64::from(char::from(c).to_digit(16)?)))
    };
    // Every digit is checked, not only the ones the key uses: anything but a well-formed
    // UUIDv7 is hashed.
    let millis = (hex(0..8)? << 16) | hex(9..13)?;
    hex(15..18)?;
    hex(20..23)?;
    hex(24..32)?;
    Some((millis, hex(32..36)?))
}

/// A source of `UUIDv7` ids for one batch, all stamped with `now_ms`. Entropy is asked of
/// the runtime once per 64 ids rather than once per id (a batch may need a hundred). An
/// empty string means no entropy was available: callers must refuse to store it.
pub fn generator(now_ms: u64) -> impl FnMut() -> String {
    const RANDOM_BYTES: usize = 10;
    let mut pool = [0u8; RANDOM_BYTES * 64];
    let mut used = pool.len();
    move || {
        if used == pool.len() {
            if getrandom::getrandom(&mut pool).is_err() {
                return String::new();
            }
            used = 0;
        }
        let mut random = [0u8; RANDOM_BYTES];
        random.copy_from_slice(&pool[used..used + RANDOM_BYTES]);
        // Spent entropy is wiped so no id can be read back from the pool.
        pool[used..used + RANDOM_BYTES].fill(0);
        used += RANDOM_BYTES;
        uuid_v7(now_ms, &random)
    }
}

/// The `UUIDv7` of a millisecond time and 74 random bits (the rest of `random` is dropped
/// for the version and variant).
pub fn uuid_v7(now_ms: u64, random: &[u8; 10]) -> String {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(random);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    // Written digit by digit: `format!` here was a fifth of an event's validation.
    let mut out = String::with_capacity(36);
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        crate::text::push_hex(&mut out, b);
    }
    out
}
