//! A download that survives its connection: when the body of a GetObject is cut (a reset, a
//! proxy timing out, the SDK's stalled-stream protection ending a transfer that stopped), it
//! asks again for the rest — `Range: bytes=<offset>-` of the same version (or, without a
//! version, `If-Match` the same ETag, so a key written over meanwhile is never stitched onto
//! the first part) — with backoff, for as long as [`OUTAGE_BUDGET`] passes without a byte
//! arriving: a store that is gone for a minute mid-restore is waited for, as the API server
//! is (`api_retry`). The reader above sees one stream.
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

type Body = Pin<Box<dyn AsyncRead + Send>>;
type Reopen = Pin<Box<dyn Future<Output = Result<Body, Refusal>> + Send>>;

/// Why asking for the rest failed.
enum Refusal {
    /// Worth asking again (the store unreachable, 5xx, a timeout).
    Retry(String),
    /// Asking again cannot help: the store answers with something that is not the rest of the
    /// same object (another range, another ETag or version, 403/404/416). Said as a transport
    /// failure: the download could not finish, which says nothing about the point.
    Final(String),
    /// The object was replaced while it was read (412 to `If-Match` its ETag).
    Changed(String),
}

enum State {
    Reading(Body),
    Reopening(Reopen),
    Failed,
}

/// The object a [`ResumingBody`] reads, and how to ask for the rest of it.
#[derive(Clone)]
pub(super) struct Source {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// The full key, as sent to S3.
    pub key: String,
    pub version: Option<String>,
    pub etag: Option<String>,
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
                "the download of s3://{}/{} was cut {} times and made no progress for {} s (at byte {} of {}; last: {}): the store or the network path failed; run again once it answers",
                self.source.bucket,
                self.source.key,
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
            bucket = %self.source.bucket, key = %self.source.key, at = self.offset, of = self.len, attempt = self.resumes,
            error = %self.last_error, "the download was cut; asking for the rest"
        );
        let (source, offset, len, total) = (self.source.clone(), self.offset, self.len, self.total);
        // The rest of the object, or of the part of it this download reads.
        let rest = if len < total { format!("bytes={offset}-{}", len - 1) } else { format!("bytes={offset}-") };
        let delay = (FIRST_DELAY * 2u32.saturating_pow(self.resumes - 1)).min(MAX_DELAY).min(left);
        self.state = State::Reopening(Box::pin(async move {
            tokio::time::sleep(delay).await;
            let mut request = source.client.get_object().bucket(&source.bucket).key(&source.key).range(rest).set_version_id(source.version.clone());
            if source.version.is_none() {
                request = request.set_if_match(source.etag.clone());
            }
            // Within what is left of the budget, whatever the SDK's own tries would take.
            let sent = tokio::time::timeout(left.max(Duration::from_secs(1)), request.send())
                .await
                .map_err(|_| Refusal::Retry(format!("no answer within {} s", left.as_secs())))?;
            let response = sent.map_err(|e| {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                match status {
                    Some(412) => Refusal::Changed(text),
                    Some(403 | 404 | 416) => Refusal::Final(text),
                    _ => Refusal::Retry(text),
                }
            })?;
            // Only the rest of the same object is stitched on: the range asked for, the same
            // version or ETag. A store that ignores Range (200, the whole object) cannot resume.
            let expected = format!("bytes {offset}-{}/{total}", len.saturating_sub(1));
            let range = response.content_range().unwrap_or_default();
            if range != expected {
                return Err(Refusal::Final(format!("the store answered the rest with {:?}, not {expected:?}", range)));
            }
            let same = |first: &Option<String>, now: Option<&str>| first.as_deref().is_none_or(|f| now.is_none_or(|n| n == f));
            if !same(&source.etag, response.e_tag()) || !same(&source.version, response.version_id()) {
                return Err(Refusal::Final("the store answered the rest from another version of the object".into()));
            }
            Ok(Box::pin(tokio::io::AsyncReadExt::take(response.body.into_async_read(), len - offset)) as Body)
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
                        let text = format!(
                            "s3://{}/{} changed while it was read (at byte {} of {}): {why}",
                            this.source.bucket, this.source.key, this.offset, this.len
                        );
                        this.last_error = text.clone();
                        return Poll::Ready(Err(io::Error::other(text)));
                    }
                },
                State::Failed => return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, this.last_error.clone()))),
            }
        }
    }
}
