//! Generated `uniqueEventId`s and the index key a chain log stores for every id.

use pms_events::log::event_id::{index_key, uuid_v7};

#[test]
fn a_generated_id_is_a_uuid_v7_carrying_its_millisecond() {
    let id = uuid_v7(0x0191_2345_6789, &[0xff; 10]);
    assert_eq!(id, "01912345-6789-7fff-bfff-ffffffffffff");
    let id = uuid_v7(1_790_000_000_123, &[0; 10]);
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "7", "version 7");
    assert_eq!(&id[19..20], "8", "RFC 9562 variant");
    assert_eq!(
        u64::from_str_radix(&id[..8], 16).unwrap() << 16 | u64::from_str_radix(&id[9..13], 16).unwrap(),
        1_790_000_000_123
    );
}

#[test]
fn other_ids_are_keyed_by_fnv1a_cut_to_52_bits_and_the_function_never_changes() {
    // FNV-1a 64 reference values, masked to 52 bits: a changed function would break the
    // deduplication of every event already stored.
    assert_eq!(index_key(""), 0xcbf2_9ce4_8422_2325 & ((1 << 52) - 1));
    assert_eq!(index_key("a"), 0xaf63_dc4c_8601_ec8c & ((1 << 52) - 1));
    assert_eq!(index_key("foobar"), 0x8594_4171_f739_67e8 & ((1 << 52) - 1));
    // Almost UUIDv7: version 4, a bad variant, no dashes, a non-hex digit.
    for id in [
        "0191e7a2-4b1c-4d2e-8f3a-0123456789ab",
        "0191e7a2-4b1c-7d2e-cf3a-0123456789ab",
        "0191e7a24b1c7d2e8f3a0123456789ab",
        "0191e7a2-4b1c-7d2e-8f3a-0123456789ag",
    ] {
        let mut fnv: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.bytes() {
            fnv = (fnv ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(index_key(id), fnv & ((1 << 52) - 1), "{id}");
    }
}

#[test]
fn uuid_v7_keys_follow_time_in_16_ms_steps_with_15_random_bits() {
    // Pinned: 0x0191e7a24b1c >> 4 = 0x0191e7a24b1, then the last 15 bits of rand_b.
    assert_eq!(index_key("0191e7a2-4b1c-7d2e-8f3a-0123456789ab"), (0x0019_1e7a_24b1 << 15) | (0x89ab & 0x7fff));
    assert_eq!(index_key("0191E7A2-4B1C-7D2E-BF3A-0123456789AB"), index_key("0191e7a2-4b1c-7d2e-8f3a-0123456789ab"));
    let at = |ms: u64, r: u8| index_key(&uuid_v7(ms, &[r; 10]));
    let now = 1_790_000_000_000;
    assert!(at(now + 16, 0) > at(now, 0xff), "a later 16 ms step sorts after any earlier key");
    assert!(at(now + 1_000_000, 0) > at(now, 0xff));
    for ms in [0, now, (1 << 48) - 1] {
        assert!(at(ms, 0xff) < 1 << 52, "exact as a JS number");
    }
}
