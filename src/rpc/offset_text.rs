//! Offsets as JSON strings: vendors and operators read them in JavaScript, where a number
//! above 2^53 would lose digits, so every offset on the wire is text.

use serde::{Deserialize, Deserializer, Serializer};

use crate::log::Offset;

#[allow(clippy::trivially_copy_pass_by_ref, reason = "the signature serde's `with` calls")]
pub fn serialize<S: Serializer>(offset: &Offset, to: S) -> Result<S::Ok, S::Error> {
    to.collect_str(offset)
}

pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Offset, D::Error> {
    let text = String::deserialize(from)?;
    crate::log::parse_offset(&text).map_err(serde::de::Error::custom)
}

/// The same for an offset that may be absent (`null`).
pub mod optional {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::log::Offset;

    #[allow(clippy::ref_option, reason = "the signature serde's `with` calls")]
    pub fn serialize<S: Serializer>(offset: &Option<Offset>, to: S) -> Result<S::Ok, S::Error> {
        match offset {
            Some(offset) => to.collect_str(offset),
            None => to.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(from: D) -> Result<Option<Offset>, D::Error> {
        Option::<String>::deserialize(from)?
            .map(|text| crate::log::parse_offset(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}
