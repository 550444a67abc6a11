//! The two parts of a configured webhook that need checking beyond their shape: where it
//! posts and the key it signs with. Each is only built valid, so the chain object never
//! meets a URL it must not call or a key it cannot sign with.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Where a webhook posts: `https://`, or `http://` to a loopback host (a receiver on the
/// operator's own machine, as in the demo configuration). No credentials in the URL (they
/// would show wherever the URL is shown) and no fragment (never sent).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

/// The longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

impl WebhookUrl {
    pub fn parse(s: &str) -> Result<WebhookUrl, String> {
        if s.len() > MAX_URL_BYTES {
            return Err(format!("is over {MAX_URL_BYTES} bytes"));
        }
        let url = url::Url::parse(s).map_err(|e| format!("is not a URL ({e})"))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => return Err("has no host".into()),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err("must be https:// (http:// only to a loopback host such as 127.0.0.1)".into()),
            other => return Err(format!("has scheme {other:?}: it must be https://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials (user:password@)".into());
        }
        if url.fragment().is_some() {
            return Err("must not have a #fragment".into());
        }
        Ok(WebhookUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL without its query, which may carry a receiver's own token: what operators
    /// and logs are shown.
    pub fn shown(&self) -> String {
        let mut shown = self.0.clone();
        shown.set_query(None);
        shown.to_string()
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({})", self.shown())
    }
}

/// A Standard Webhooks signing key: `whsec_` and the base64 of 24 to 64 random bytes. Its
/// `Debug` shows nothing of it, so no log line or error message can carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

pub const SECRET_PREFIX: &str = "whsec_";
pub const MIN_SECRET_BYTES: usize = 24;
pub const MAX_SECRET_BYTES: usize = 64;

impl WebhookSecret {
    /// The error never repeats the value.
    pub fn parse(s: &str) -> Result<WebhookSecret, String> {
        let Some(encoded) = s.strip_prefix(SECRET_PREFIX) else {
            return Err(format!("must start with {SECRET_PREFIX:?} (a Standard Webhooks secret)"));
        };
        let key = STANDARD.decode(encoded).map_err(|_| format!("must be {SECRET_PREFIX} followed by base64"))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(format!(
                "must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes (got {}): generate one with `openssl rand \
                    -base64 32`",
                key.len()
            ));
        }
        Ok(WebhookSecret(key))
    }

    pub fn key(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}
