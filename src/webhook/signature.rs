//! The Standard Webhooks headers (<https://www.standardwebhooks.com/>, "Signature scheme"):
//! `webhook-id`, `webhook-timestamp` (seconds) and `webhook-signature`, which is `v1,` and
//! the base64 HMAC-SHA256, under the secret's key, of `{id}.{timestamp}.{body}`. Receivers
//! verify it with the official `standardwebhooks` libraries.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::BatchRange;
use crate::config::endpoint::WebhookSecret;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The message id of a batch: derived from the chain, the webhook and the batch's offsets,
/// so every retry of a batch (also after the object restarted) carries the same id and a
/// receiver can tell a retry from a new message. Two webhooks of one receiver never share an
/// id, and after an operator's `resume` (`resumes` counts them) events delivered again come
/// under new ids, so a receiver that deduplicates by id does not drop the redelivery.
pub fn message_id(chain: &str, webhook: &str, resumes: u32, range: BatchRange) -> String {
    let (from, through) = (range.from, range.through);
    if resumes == 0 {
        format!("msg_{chain}_{webhook}_{from}_{through}")
    } else {
        format!("msg_{chain}_{webhook}_r{resumes}_{from}_{through}")
    }
}

/// The `webhook-signature` value for one attempt.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp_seconds: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.key()).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The three headers of one attempt, in the order the specification lists them.
pub fn headers(secret: &WebhookSecret, id: &str, timestamp_seconds: u64, body: &str) -> [(&'static str, String); 3] {
    [
        (ID_HEADER, id.to_string()),
        (TIMESTAMP_HEADER, timestamp_seconds.to_string()),
        (SIGNATURE_HEADER, sign(secret, id, timestamp_seconds, body)),
    ]
}
