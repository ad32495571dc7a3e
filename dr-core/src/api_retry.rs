//! The one retry layer under every Kubernetes API call the product makes (a tower layer in
//! the client, so the backup, the restore, the plugin and the waits all get it): throttling
//! (429), server errors (500, 502, 503, 504) and dropped connections are retried, 200 ms
//! doubling to 10 s, six times, honouring the server's `Retry-After`. Nothing above it
//! retries API calls again; what is left after six tries is a transient failure for the
//! caller (`failure::ErrorKind::Transient`), which the restore Job answers by starting
//! another pod.
//!
//! Retrying a create after a dropped connection is safe for the restore: if the first try
//! reached the server, the retry gets 409 AlreadyExists, and the object carries the restore's
//! own annotation, so it counts as restored.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use tower::retry::Policy;
use tower::BoxError;

/// Tries after the first.
pub const RETRIES: u32 = 6;
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured; a server asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Per request: the tries made so far (tower clones the policy for each request).
#[derive(Clone, Debug, Default)]
pub struct ApiRetry {
    attempt: u32,
}

/// Whether an HTTP status is worth trying again.
pub fn retryable_status(code: u16) -> bool {
    matches!(code, 429 | 500 | 502 | 503 | 504)
}

/// Whether a transport error is TLS refusing the server (an untrusted or invalid
/// certificate, a failed handshake): a retry cannot change it.
fn is_tls_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(e) = current {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if inner.downcast_ref::<rustls::Error>().is_some() {
                return true;
            }
        }
        current = e.source();
    }
    false
}

impl ApiRetry {
    fn backoff(&self) -> Duration {
        (FIRST_DELAY * 2u32.saturating_pow(self.attempt.saturating_sub(1))).min(MAX_DELAY)
    }
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for ApiRetry {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, req: &mut Request<Body>, result: &mut Result<Response<Res>, BoxError>) -> Option<Self::Future> {
        if self.attempt >= RETRIES {
            return None;
        }
        let server_wait = match result {
            Ok(response) if retryable_status(response.status().as_u16()) => response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER)),
            Ok(_) => return None,
            // A certificate that is not trusted will not become trusted: say so at once.
            Err(e) if is_tls_refusal(e.as_ref()) => return None,
            Err(e) => {
                tracing::debug!(error = %e, method = %req.method(), uri = %req.uri(), "API request failed; retrying");
                None
            }
        };
        self.attempt += 1;
        Some(tokio::time::sleep(server_wait.unwrap_or_else(|| self.backoff())))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Streaming bodies cannot be replayed; every request the product sends is whole.
        let body = req.body().try_clone()?;
        let mut clone = Request::builder().method(req.method().clone()).uri(req.uri().clone()).version(req.version());
        if let Some(headers) = clone.headers_mut() {
            headers.extend(req.headers().clone());
        }
        clone.body(body).ok().map(|mut r| {
            *r.extensions_mut() = req.extensions().clone();
            r
        })
    }
}

/// The API server could not get an admission webhook's verdict (500 "failed calling webhook").
pub fn webhook_refused(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 500 && s.message.contains("failed calling webhook"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_refusals_are_not_retried_but_dropped_connections_are() {
        let tls = std::io::Error::other(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer));
        assert!(is_tls_refusal(&tls));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!is_tls_refusal(&reset));
    }

    #[test]
    fn backoff_doubles_to_its_cap() {
        let mut p = ApiRetry::default();
        let mut delays = Vec::new();
        for _ in 0..RETRIES {
            p.attempt += 1;
            delays.push(p.backoff());
        }
        assert_eq!(delays[0], FIRST_DELAY);
        assert_eq!(delays[1], FIRST_DELAY * 2);
        assert!(delays.iter().all(|d| *d <= MAX_DELAY));
    }
}
