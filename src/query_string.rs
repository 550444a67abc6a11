//! A request's query string as the HTTP APIs read it: each parameter at most once.

use std::borrow::Cow;

/// One decoded parameter: its name and value.
pub type Param<'q> = (Cow<'q, str>, Cow<'q, str>);

/// The parameters of `query`, decoded, in order; `Err` with the `400` message when one is
/// given twice (which of two values was meant cannot be told).
pub fn unique_params(query: &str) -> Result<Vec<Param<'_>>, String> {
    let mut params: Vec<Param<'_>> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if params.iter().any(|(seen, _)| *seen == key) {
            return Err(format!("the parameter {key:?} is given twice"));
        }
        params.push((key, value));
    }
    Ok(params)
}

/// A `limit` (or `first`) of 1 to `max`; `Err` with the `400` message.
pub fn parse_limit(text: &str, max: usize) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("limit must be a whole number from 1 to {max}, got {text:?}"))
}
