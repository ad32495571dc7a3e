//! What the stores reached over their REST APIs (Azure Blob, GCS) share: the HTTP client's
//! settings, which endpoints may be plain http, which answers are worth trying again, and how
//! a transport error and a body are said and read without leaking a signed URL.

use std::time::Duration;

use super::LocationError;

/// Tries of one request that meets a transient failure (transport, 408, 429, 5xx).
pub(super) const ATTEMPTS: u32 = 6;

/// The HTTP client for a store: connect and read timeouts (a download cut by the read timeout
/// resumes), and no redirects (one would carry a SAS or a bearer token elsewhere; the stores
/// never send one).
pub(super) fn client() -> Result<reqwest::Client, LocationError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| LocationError::Invalid(format!("cannot build an HTTPS client: {e}")))
}

/// `endpoint` checked as a store's base URL (`what` names it in messages): http(s) without a
/// query, and plain http only to this machine (an emulator), since credentials would cross
/// the network in clear. Returned without a trailing slash.
pub(super) fn endpoint(endpoint: &str, what: &str) -> Result<String, LocationError> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| LocationError::Invalid(format!("{what} {endpoint:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(LocationError::Invalid(format!("{what} must be an http(s) URL without a query or a user name")));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(LocationError::Invalid(format!(
            "{what} {endpoint:?} is plain http: credentials would cross the network unencrypted; use https (http is accepted only for an emulator on this machine)"
        )));
    }
    Ok(endpoint.trim_end_matches('/').to_owned())
}

pub(super) fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether an error status is worth the same request again.
pub(super) fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The answer's `Retry-After` in seconds, at most 30 s.
pub(super) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    header(response, "retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(|s| Duration::from_secs(s.min(30)))
}

pub(super) fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A response's body as a byte stream.
pub(super) fn body_reader(response: reqwest::Response) -> super::download::Body {
    use futures::TryStreamExt;
    Box::pin(tokio_util::io::StreamReader::new(response.bytes_stream().map_err(|e| std::io::Error::other(e.without_url()))))
}

/// A transport error with its causes (reqwest says only "error sending request" at the top),
/// without the URL: a SAS or an upload session rides in it.
pub(super) fn transport_text(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
