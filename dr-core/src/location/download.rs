//! A download that survives its connection: when an object's body is cut (a reset, a proxy
//! timing out, a stalled transfer ended), it asks the store again for the rest — the bytes from
//! where it stopped, of the same version (or, without a version, of the same ETag, so an
//! object written over meanwhile is never stitched onto the first part) — with backoff, for as
//! long as [`OUTAGE_BUDGET`] passes without a byte arriving: a store that is gone for a minute
//! mid-restore is waited for, as the API server is (`api_retry`). The reader above sees one
//! stream. How to ask is the store's ([`Source::reopen`]: a ranged GetObject on S3, a ranged
//! Get Blob on Azure); what counts as the rest is decided here, once for every store.
//!
//! Only the rest of the same object is stitched on: an answer that is not `bytes <offset>-` of
//! the length first given, or that comes from another version or ETag, ends the download, and
//! nothing past that length is ever read. What it cannot get is a transport failure, never
//! damage: the error it ends with has the kind `ConnectionAborted` and names the object and
//! how far it got, so the restore-point reader classifies it as transient (run again), not as
//! a damaged point. An object replaced while it was read (412 to `If-Match`) is not a
//! transport failure, and is said as what it is.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};

/// How long a cut download keeps asking for the rest while no byte arrives.
pub const OUTAGE_BUDGET: Duration = Duration::from_secs(90);
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(10);

pub(super) type Body = Pin<Box<dyn AsyncRead + Send>>;
type Reopen = Pin<Box<dyn Future<Output = Result<Body, Refusal>> + Send>>;

/// Why asking for the rest failed.
pub(super) enum Refusal {
    /// Worth asking again (the store unreachable, 5xx, a timeout).
    Retry(String),
    /// Asking again cannot help: the store answers with something that is not the rest of the
    /// same object (another range, another ETag or version, 403/404/416). Said as a transport
    /// failure: the download could not finish, which says nothing about the point.
    Final(String),
    /// The object was replaced while it was read (412 to `If-Match` its ETag).
    Changed(String),
}

/// What a download asks its store for when it was cut: `Range: bytes=<range>` of the same
/// object, answered within `within`.
pub(super) struct Rest {
    /// The `Range` header's value: `bytes=<offset>-` or `bytes=<offset>-<last>`.
    pub range: String,
    pub within: Duration,
}

/// A store's answer to a [`Rest`]: checked here to be that range of the same object before a
/// byte of it is read.
pub(super) struct Answer {
    /// The answer's `Content-Range`.
    pub content_range: Option<String>,
    /// The version and ETag the answer states, where it states them.
    pub version: Option<String>,
    pub etag: Option<String>,
    pub body: Body,
}

/// How a store asks for the rest of one object.
pub(super) type Reopener = std::sync::Arc<dyn Fn(Rest) -> Pin<Box<dyn Future<Output = Result<Answer, Refusal>> + Send>> + Send + Sync>;

/// The object a [`ResumingBody`] reads, and how to ask for the rest of it.
#[derive(Clone)]
pub(super) struct Source {
    /// The object, for messages (`s3://bucket/key`).
    pub name: String,
    /// The version read, or (without one) the ETag: what the rest is held to. With neither a
    /// cut download cannot resume.
    pub version: Option<String>,
    pub etag: Option<String>,
    /// Sends the request for the rest: the version, or `If-Match` the ETag, is the store's to
    /// put in it.
    pub reopen: Reopener,
}

/// What an answer to a ranged request for an object's first `n` bytes holds: `(len, total)`,
/// the bytes it carries and the object's size. Exactly the first bytes are accepted, as many as
/// asked for or the whole of a shorter object (`Content-Range: bytes 0-634/12345`); a store
/// that ignores Range sends the whole object, whose first bytes are read. Anything else is
/// said (`Err`) as what it was.
pub(super) fn first_bytes(content_range: Option<&str>, content_length: Option<u64>, n: u64) -> Result<(u64, u64), String> {
    match (content_range, content_length) {
        (Some(range), _) => {
            let parsed = range
                .strip_prefix("bytes 0-")
                .and_then(|r| r.split_once('/'))
                .and_then(|(last, total)| Some((last.parse::<u64>().ok()? + 1, total.parse::<u64>().ok()?)));
            match parsed {
                Some((len, total)) if len == n.min(total) => Ok((len, total)),
                _ => Err(format!("Content-Range {range:?} for the first {n} bytes")),
            }
        }
        (None, Some(size)) => Ok((size.min(n), size)),
        (None, None) => Err("neither a Content-Range nor a Content-Length".into()),
    }
}

enum State {
    Reading(Body),
    Reopening(Reopen),
    Failed,
}

pub(super) struct ResumingBody {
    source: Source,
    /// Bytes this download reads: the object's first `len` bytes.
    len: u64,
    /// The object's size (what the store's Content-Range states after the slash).
    total: u64,
    offset: u64,
    /// Resumes since the last byte arrived, and since when none has: a store that keeps
    /// failing without progress for [`OUTAGE_BUDGET`] fails the read.
    resumes: u32,
    stalled_since: Option<std::time::Instant>,
    /// Every cut of this download, for the message.
    cuts: u32,
    state: State,
    last_error: String,
}

impl ResumingBody {
    /// Reads the first `len` bytes of an object of `total` bytes (`len == total`: all of it).
    /// `body` is read to `len` bytes at most: whatever a store sends past the length it gave is
    /// never handed on.
    pub(super) fn new(source: Source, len: u64, total: u64, body: Body) -> Self {
        let body = Box::pin(tokio::io::AsyncReadExt::take(body, len));
        Self { source, len, total, offset: 0, resumes: 0, stalled_since: None, cuts: 0, state: State::Reading(body), last_error: String::new() }
    }

    /// The error the reader ends with once resuming has not helped.
    fn gave_up(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!(
                "the download of {} was cut {} times and made no progress for {} s (at byte {} of {}; last: {}): the store or the network path failed; run again once it answers",
                self.source.name,
                self.cuts,
                self.stalled_since.map_or(0, |t| t.elapsed().as_secs()),
                self.offset,
                self.len,
                self.last_error
            ),
        )
    }

    /// Starts asking for the rest, after a backoff; `Err` when resuming is used up or cannot
    /// work (the object has neither a version nor an ETag to hold the rest to).
    fn resume(&mut self, why: String) -> Result<(), io::Error> {
        self.last_error = why;
        self.cuts += 1;
        let since = *self.stalled_since.get_or_insert_with(std::time::Instant::now);
        let left = OUTAGE_BUDGET.saturating_sub(since.elapsed());
        if left.is_zero() || (self.source.version.is_none() && self.source.etag.is_none()) {
            self.state = State::Failed;
            return Err(self.gave_up());
        }
        self.resumes += 1;
        tracing::warn!(
            object = %self.source.name, at = self.offset, of = self.len, attempt = self.resumes,
            error = %self.last_error, "the download was cut; asking for the rest"
        );
        let (source, offset, len, total) = (self.source.clone(), self.offset, self.len, self.total);
        // The rest of the object, or of the part of it this download reads.
        let rest = if len < total { format!("bytes={offset}-{}", len - 1) } else { format!("bytes={offset}-") };
        let delay = (FIRST_DELAY * 2u32.saturating_pow(self.resumes - 1)).min(MAX_DELAY).min(left);
        self.state = State::Reopening(Box::pin(async move {
            tokio::time::sleep(delay).await;
            let answer = (source.reopen)(Rest { range: rest, within: left.max(Duration::from_secs(1)) }).await?;
            // Only the rest of the same object is stitched on: the range asked for, the same
            // version or ETag. A store that ignores Range (200, the whole object) cannot resume.
            let expected = format!("bytes {offset}-{}/{total}", len.saturating_sub(1));
            let range = answer.content_range.unwrap_or_default();
            if range != expected {
                return Err(Refusal::Final(format!("the store answered the rest with {:?}, not {expected:?}", range)));
            }
            let same = |first: &Option<String>, now: &Option<String>| first.as_deref().is_none_or(|f| now.as_deref().is_none_or(|n| n == f));
            if !same(&source.etag, &answer.etag) || !same(&source.version, &answer.version) {
                return Err(Refusal::Final("the store answered the rest from another version of the object".into()));
            }
            Ok(Box::pin(tokio::io::AsyncReadExt::take(answer.body, len - offset)) as Body)
        }));
        Ok(())
    }
}

impl AsyncRead for ResumingBody {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Reading(body) => {
                    let before = buf.filled().len();
                    let why = match body.as_mut().poll_read(cx, buf) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) => {
                            let n = (buf.filled().len() - before) as u64;
                            this.offset += n;
                            if n > 0 {
                                this.resumes = 0;
                                this.stalled_since = None;
                            }
                            // An orderly end before the length the store gave is a cut too.
                            if n > 0 || this.offset >= this.len || buf.remaining() == 0 {
                                return Poll::Ready(Ok(()));
                            }
                            format!("the body ended at byte {} of {}", this.offset, this.len)
                        }
                        Poll::Ready(Err(e)) => e.to_string(),
                    };
                    if let Err(e) = this.resume(why) {
                        return Poll::Ready(Err(e));
                    }
                }
                State::Reopening(reopen) => match reopen.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(body)) => this.state = State::Reading(body),
                    Poll::Ready(Err(Refusal::Retry(why))) => {
                        if let Err(e) = this.resume(why) {
                            return Poll::Ready(Err(e));
                        }
                    }
                    Poll::Ready(Err(Refusal::Final(why))) => {
                        this.last_error = why;
                        this.state = State::Failed;
                        return Poll::Ready(Err(this.gave_up()));
                    }
                    Poll::Ready(Err(Refusal::Changed(why))) => {
                        this.state = State::Failed;
                        let text = format!("{} changed while it was read (at byte {} of {}): {why}", this.source.name, this.offset, this.len);
                        this.last_error = text.clone();
                        return Poll::Ready(Err(io::Error::other(text)));
                    }
                },
                State::Failed => return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, this.last_error.clone()))),
            }
        }
    }
}
