//! The one retry layer under every Kubernetes API call the product makes (a tower layer in
//! the client, so the backup, the restore, the plugin and the waits all get it): throttling
//! (429) and server errors (500, 502, 503, 504) are retried 200 ms doubling to 10 s, six
//! times, honouring the server's `Retry-After`; a server that cannot be reached at all
//! (connection refused or reset: an API server restarting, a link down) is retried for as
//! long as [`UNREACHABLE_BUDGET`], every few seconds at most, so a restore rides out an API
//! server restart instead of failing the objects it was writing. Delays carry jitter, so the
//! restore's parallel writers do not come back in step. Nothing above it retries API calls
//! again; what is left is a transient failure for the caller
//! (`failure::ErrorKind::Transient`), which the restore Job answers by starting another pod.
//!
//! Retrying a create after a dropped connection is safe for the restore: if the first try
//! reached the server, the retry gets 409 AlreadyExists, and the object carries the restore's
//! own annotation, so it counts as restored.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use tower::retry::Policy;
use tower::BoxError;

/// Tries after the first, for a server that answers with a retryable status.
pub const RETRIES: u32 = 6;
/// How long a request keeps trying a server it cannot reach (from its first failure), once
/// this process has had an answer from it: an API server restarting under a restore.
pub const UNREACHABLE_BUDGET: Duration = Duration::from_secs(90);
/// The same before any answer: a wrong address or a cluster that is down fails in seconds.
pub const FIRST_CONTACT_BUDGET: Duration = Duration::from_secs(5);
/// Whether any API request of this process got an answer.
static REACHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The longest wait between tries of a server that cannot be reached.
const UNREACHABLE_MAX_DELAY: Duration = Duration::from_secs(3);
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured; a server asking for more gets this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Per request: the tries made so far (tower clones the policy for each request).
#[derive(Clone, Debug, Default)]
pub struct ApiRetry {
    attempt: u32,
    /// When the server was first found unreachable for this request.
    unreachable_since: Option<std::time::Instant>,
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

/// `d` less up to a quarter, at random: writers that failed together do not retry together.
fn jittered(d: Duration) -> Duration {
    let mut byte = [0u8; 1];
    crate::format::crypto::fill_random(&mut byte);
    d - d.mul_f64(f64::from(byte[0]) / 255.0 / 4.0)
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for ApiRetry {
    type Future = tokio::time::Sleep;

    fn retry(&mut self, req: &mut Request<Body>, result: &mut Result<Response<Res>, BoxError>) -> Option<Self::Future> {
        // Unreachable: keep trying within the budget, whatever the count.
        if let Err(e) = result {
            if !is_tls_refusal(e.as_ref()) {
                let since = *self.unreachable_since.get_or_insert_with(std::time::Instant::now);
                let budget = if REACHED.load(std::sync::atomic::Ordering::Relaxed) { UNREACHABLE_BUDGET } else { FIRST_CONTACT_BUDGET };
                if since.elapsed() >= budget {
                    return None;
                }
                if self.attempt == 0 || self.attempt.is_multiple_of(10) {
                    tracing::debug!(error = %e, method = %req.method(), uri = %req.uri(), "the API server cannot be reached; retrying");
                }
                self.attempt += 1;
                return Some(tokio::time::sleep(jittered(self.backoff().min(UNREACHABLE_MAX_DELAY))));
            }
        }
        if result.is_ok() {
            REACHED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
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
            Err(_) => None,
        };
        self.attempt += 1;
        Some(tokio::time::sleep(server_wait.unwrap_or_else(|| jittered(self.backoff()))))
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
