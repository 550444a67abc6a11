//! One webhook attempt as the runtime makes it: the signed request, a little of the answer,
//! all within the timeout. What the answer does is the core's (`chain::webhooks`).

use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response};

use crate::config::Webhook;
use crate::webhook::{signature, Failure};

/// The part of a receiver's answer kept to explain a failure.
const ANSWER_EXCERPT_BYTES: usize = 512;

/// Sends one signed request and reads a little of the answer, all within `timeout_ms`.
/// `Ok` is the 2xx status; a redirect is answered, never followed.
pub async fn post(
    webhook: &Webhook,
    id: &str,
    body: &str,
    timestamp: u64,
    timeout_ms: u64,
) -> std::result::Result<u16, Failure> {
    use futures::future::{select, Either};
    let controller = AbortController::default();
    let signal = controller.signal();
    let attempt = async {
        let headers = Headers::new();
        // The runtime's message may quote the URL, whose query can hold the receiver's token.
        let net =
            |e: worker::Error| Failure::Network(e.to_string().replace(webhook.url.as_str(), &webhook.url.shown()));
        headers.set("content-type", "application/json").map_err(net)?;
        headers.set("user-agent", concat!("pms-events-webhooks/", env!("CARGO_PKG_VERSION"))).map_err(net)?;
        for (name, value) in signature::headers(&webhook.secret, id, timestamp, body) {
            headers.set(name, &value).map_err(net)?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual)
            .with_body(Some(body.into()));
        let request = Request::new_with_init(webhook.url.as_str(), &init).map_err(net)?;
        let mut resp = Fetch::Request(request).send_with_signal(&signal).await.map_err(net)?;
        let status = resp.status_code();
        match Failure::from_status(status, "") {
            None => {
                // The answer's body is not needed: cancelled, so its connection is free at once.
                if let worker::ResponseBody::Stream(body) = resp.body() {
                    let _ = body.cancel();
                }
                Ok(status)
            }
            Some(_) => Err(Failure::from_status(status, &excerpt(&mut resp).await)
                .unwrap_or(Failure::Status { status, body: String::new() })),
        }
    };
    let timeout = worker::Delay::from(std::time::Duration::from_millis(timeout_ms));
    futures::pin_mut!(attempt);
    match select(attempt, timeout).await {
        Either::Left((outcome, _)) => outcome,
        Either::Right(((), _)) => {
            controller.abort();
            Err(Failure::Timeout { after_ms: timeout_ms })
        }
    }
}

/// The first bytes of an answer's body, as text (the rest is never read).
async fn excerpt(resp: &mut Response) -> String {
    use futures::StreamExt;
    let Ok(mut stream) = resp.stream() else { return String::new() };
    let mut bytes = Vec::new();
    while bytes.len() < ANSWER_EXCERPT_BYTES {
        match stream.next().await {
            Some(Ok(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(ANSWER_EXCERPT_BYTES);
    String::from_utf8_lossy(&bytes).into_owned()
}
