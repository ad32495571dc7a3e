//! A scripted fault proxy: it sits on a loopback port between the product and a real server
//! (moto, the test API server) and does to chosen requests what a bad day's network and
//! servers do — answers with a status instead of the server (500, 503 SlowDown, 429 with
//! Retry-After, 410 Gone), holds a request, resets the connection, cuts a response's body,
//! stalls — and passes everything else through untouched. It speaks HTTP/1.1 (requests are
//! parsed one by one on each kept-alive connection, so each can be scripted); a TLS stream
//! cannot be read, so [`FaultProxy::tls_passthrough`] forwards bytes and scripts per
//! connection instead (reset or stall after so many bytes). [`FaultProxy::refuse_for`] stops
//! the listener for a while, as a server that went away does: connections are cut, new
//! ones refused, then it listens again on the same port.
//!
//! Rules are tried in the order they were added; the first whose matcher accepts a request
//! and has uses left applies to it, once. Every request is logged with what was done to it,
//! so a test can assert that the fault really happened and what the product did next.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to a request a rule matched.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status, headers and body; the server never sees the request.
    Respond { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// Hold the request this long, then forward it.
    Delay(Duration),
    /// Reset the connection once the request is read; the server never sees it.
    Reset,
    /// Forward the request, then reset the connection instead of passing the answer on: the
    /// server acted, the client never learns it did.
    ResetAfterForward,
    /// Forward the request and pass on the answer's head and the first `after` bytes of its
    /// body, then end the connection (closed, then reset once the client leaves): a download
    /// cut mid-body, with exactly `after` bytes delivered however slowly the client reads.
    CutBody { after: u64 },
    /// Forward the request and pass on the answer's head and the first `after` bytes of its
    /// body, then send nothing more, holding the connection open: a stalled download.
    StallBody { after: u64 },
    /// Read the request and never answer, holding the connection open.
    Stall,
    /// Wait this long, then do the other fault: a webhook that times out answers 500 only
    /// after its timeout.
    Slow(Duration, Box<Fault>),
    /// Forward the request and pass on the answer with its body rewritten: what a server
    /// states that the test needs otherwise (a session's expiry, say). Answers of a known
    /// length only (`Content-Length`), as moto sends them.
    Rewrite(fn(&[u8]) -> Vec<u8>),
}

impl Fault {
    /// A status with a JSON body (a Kubernetes `metav1.Status`, say).
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Fault::Respond { status, headers: vec![("Content-Type".into(), "application/json".into())], body: body.to_string().into_bytes() }
    }

    /// A Kubernetes `metav1.Status` failure, as a kube-apiserver sends it.
    pub fn kube_status(status: u16, reason: &str, message: &str) -> Self {
        Self::json(
            status,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": status}),
        )
    }

    /// An S3 error document, as S3 sends it.
    pub fn s3_error(status: u16, code: &str, message: &str) -> Self {
        let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
        Fault::Respond { status, headers: vec![("Content-Type".into(), "application/xml".into())], body: body.into_bytes() }
    }

    /// Adds a header to a [`Fault::Respond`] (`Retry-After`, say).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Fault::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// A request as the proxy read it: what rules match on.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The request's body (a create's object, an S3 part).
    pub body: Vec<u8>,
}

impl RequestHead {
    /// Whether the body holds `text` (a create of one object, by its name).
    pub fn body_contains(&self, text: &str) -> bool {
        self.body.windows(text.len().max(1)).any(|w| w == text.as_bytes())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or_default()
    }
}

/// One request the proxy saw, and what it did with it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// `None` when passed through; the fault otherwise (its variant's name).
    pub fault: Option<String>,
    /// The status the client got, when it got one.
    pub status: Option<u16>,
}

type Matcher = Box<dyn Fn(&RequestHead) -> bool + Send + Sync>;

struct Rule {
    matcher: Matcher,
    fault: Fault,
    uses: usize,
}

#[derive(Default)]
struct Script {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    /// Body cuts carried out to the end (the bytes sent, the connection closed).
    cuts_done: usize,
}

/// A running proxy; dropped, it stops listening and cuts its connections.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: give this to the product instead of the server's URL.
    pub url: String,
    script: Arc<Mutex<Script>>,
    addr: std::net::SocketAddr,
    target: String,
    tls: bool,
    /// Taken on drop, to be shut down without blocking (a test may drop it inside its own runtime).
    runtime: Option<tokio::runtime::Runtime>,
    serving: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl FaultProxy {
    /// An HTTP/1.1 proxy to `target` (`http://host:port` or `host:port`), scripted per request.
    pub fn start(target: &str) -> Self {
        Self::start_with(target, false)
    }

    /// A byte-for-byte proxy to a TLS server, scripted per connection: rules see a
    /// [`RequestHead`] with method `CONNECT` and the connection's number as target.
    /// [`Fault::CutBody`] resets the connection after that many bytes from the server,
    /// [`Fault::StallBody`] stops forwarding after them, [`Fault::Reset`] resets at once.
    pub fn tls_passthrough(target: &str) -> Self {
        Self::start_with(target, true)
    }

    fn start_with(target: &str, tls: bool) -> Self {
        // Its own runtime on its own threads, so that sync and async tests alike can start it,
        // and the product under test never shares a scheduler with its faults.
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("the proxy's runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let addr = listener.local_addr().unwrap();
        let target = target.trim_start_matches("http://").trim_start_matches("https://").trim_end_matches('/').to_owned();
        let scheme = if tls { "https" } else { "http" };
        let proxy =
            FaultProxy { url: format!("{scheme}://{addr}"), script: Arc::default(), addr, target, tls, runtime: Some(runtime), serving: Mutex::new(None) };
        let (target, script) = (proxy.target.clone(), proxy.script.clone());
        let task = proxy.runtime().spawn(async move {
            let listener = TcpListener::from_std(listener).expect("the proxy's listener");
            accept_loop(listener, target, script, tls).await
        });
        *proxy.serving.lock().unwrap() = Some(task);
        proxy
    }

    /// Applies `fault` to the next `uses` requests `matcher` accepts.
    pub fn on(&self, matcher: impl Fn(&RequestHead) -> bool + Send + Sync + 'static, fault: Fault, uses: usize) -> &Self {
        self.script.lock().unwrap().rules.push(Rule { matcher: Box::new(matcher), fault, uses });
        self
    }

    /// Removes every rule not yet used up.
    pub fn clear(&self) {
        self.script.lock().unwrap().rules.clear();
    }

    /// What the proxy saw so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// How many requests got `fault` (its variant's name, as in [`Seen::fault`]).
    pub fn applied(&self, fault: &str) -> usize {
        self.script.lock().unwrap().seen.iter().filter(|s| s.fault.as_deref() == Some(fault)).count()
    }

    /// How many [`Fault::CutBody`] cuts are over: their bytes sent and the connection closed.
    /// [`FaultProxy::applied`] counts a cut as soon as its answer starts, so a test that acts
    /// once the client has what the cut lets through waits for this instead.
    pub fn cuts_done(&self) -> usize {
        self.script.lock().unwrap().cuts_done
    }

    /// The server goes away for `down`: the listener closes (new connections are refused),
    /// open connections are cut, and then it listens again on the same port. Returns at once;
    /// the outage runs on the proxy's own threads.
    pub fn refuse_for(&self, down: Duration) {
        if let Some(task) = self.serving.lock().unwrap().take() {
            task.abort();
        }
        let (addr, target, script, tls) = (self.addr, self.target.clone(), self.script.clone(), self.tls);
        let handle = self.runtime().spawn(async move {
            tokio::time::sleep(down).await;
            // The old listener's port may linger for a moment after the abort: keep trying.
            let listener = loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            };
            accept_loop(listener, target, script, tls).await;
        });
        *self.serving.lock().unwrap() = Some(handle);
    }
}

impl FaultProxy {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the proxy is running")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.serving.lock().unwrap().take() {
            task.abort();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Accepts until aborted; aborting drops the listener and, with the join set, every
/// connection it serves.
async fn accept_loop(listener: TcpListener, target: String, script: Arc<Mutex<Script>>, tls: bool) {
    let mut connections = tokio::task::JoinSet::new();
    let mut number = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let _ = client.set_nodelay(true);
                number += 1;
                let (target, script) = (target.clone(), script.clone());
                if tls {
                    connections.spawn(passthrough(client, target, script, number));
                } else {
                    connections.spawn(async move {
                        let _ = serve_http(client, &target, &script).await;
                    });
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Closes `stream` with a TCP reset rather than an orderly FIN.
fn reset(stream: TcpStream) {
    reset_on_close(&stream);
    drop(stream);
}

/// A zero linger: closing sends a reset at once. (tokio deprecates `set_linger` because a
/// non-zero linger blocks the thread on drop; zero never waits.)
#[allow(deprecated)]
fn reset_on_close(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

fn take_fault(script: &Mutex<Script>, head: &RequestHead) -> Option<Fault> {
    let mut script = script.lock().unwrap();
    let rule = script.rules.iter_mut().find(|r| r.uses > 0 && (r.matcher)(head))?;
    rule.uses -= 1;
    Some(rule.fault.clone())
}

fn fault_name(fault: &Fault) -> String {
    format!("{fault:?}").split([' ', '(', '{']).next().unwrap_or_default().to_owned()
}

fn log(script: &Mutex<Script>, head: &RequestHead, fault: Option<&Fault>, status: Option<u16>) {
    script.lock().unwrap().seen.push(Seen {
        method: head.method.clone(),
        target: head.target.clone(),
        headers: head.headers.clone(),
        fault: fault.map(fault_name),
        status,
    });
}

/// Reads a message head (up to the blank line); `None` at a clean end of stream.
async fn read_head<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Option<(String, Vec<(String, String)>)>> {
    let mut first = String::new();
    loop {
        first.clear();
        if reader.read_line(&mut first).await? == 0 {
            return Ok(None);
        }
        if !first.trim().is_empty() {
            break;
        }
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the stream ended inside a message head"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Ok(Some((first.trim_end_matches(['\r', '\n']).to_owned(), headers)))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// How a message's body ends.
#[derive(Clone, Copy, Debug)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn framing(headers: &[(String, String)], response: bool) -> Framing {
    if header(headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        Framing::Chunked
    } else if let Some(n) = header(headers, "content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else if response {
        Framing::UntilClose
    } else {
        Framing::None
    }
}

fn write_head(first: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("{first}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Where a body copy stops early.
#[derive(Clone, Copy)]
enum Stop {
    Never,
    /// After this many bytes: the copy returns `Ok(false)`.
    After(u64),
}

/// Copies one body from `from` to `to` as it arrives (a watch streams for minutes), framed as
/// `framing` says. Returns whether the whole body was copied (false when `stop` cut it).
async fn copy_body<R, W>(from: &mut R, to: &mut W, framing: Framing, stop: Stop) -> std::io::Result<bool>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut sent = 0u64;
    let budget = |n: u64, sent: u64| -> u64 {
        match stop {
            Stop::Never => n,
            Stop::After(limit) => n.min(limit.saturating_sub(sent)),
        }
    };
    match framing {
        Framing::None => Ok(true),
        Framing::Length(mut left) => {
            let mut buf = vec![0u8; 64 * 1024];
            while left > 0 {
                let want = budget(left.min(buf.len() as u64), sent);
                if want == 0 {
                    return Ok(false);
                }
                let n = from.read(&mut buf[..want as usize]).await?;
                if n == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the body ended early"));
                }
                to.write_all(&buf[..n]).await?;
                to.flush().await?;
                left -= n as u64;
                sent += n as u64;
            }
            Ok(true)
        }
        Framing::UntilClose => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let want = budget(buf.len() as u64, sent);
                if want == 0 {
                    return Ok(false);
                }
                let n = from.read(&mut buf[..want as usize]).await?;
                if n == 0 {
                    return Ok(true);
                }
                to.write_all(&buf[..n]).await?;
                to.flush().await?;
                sent += n as u64;
            }
        }
        Framing::Chunked => {
            // The chunk framing is passed on as it is; `stop` counts every byte of it.
            loop {
                let mut size_line = String::new();
                if from.read_line(&mut size_line).await? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the chunked body ended early"));
                }
                let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0").trim(), 16)
                    .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a chunk size line {size_line:?}")))?;
                let mut piece = size_line.clone().into_bytes();
                if size == 0 {
                    // The trailers, up to the blank line.
                    loop {
                        let mut line = String::new();
                        if from.read_line(&mut line).await? == 0 || line.trim().is_empty() {
                            piece.extend_from_slice(line.as_bytes());
                            break;
                        }
                        piece.extend_from_slice(line.as_bytes());
                    }
                    let allowed = budget(piece.len() as u64, sent) as usize;
                    to.write_all(&piece[..allowed]).await?;
                    to.flush().await?;
                    return Ok(allowed == piece.len());
                }
                let mut left = size + 2; // the data and its CRLF
                let allowed = budget(piece.len() as u64, sent) as usize;
                to.write_all(&piece[..allowed]).await?;
                sent += allowed as u64;
                if allowed < piece.len() {
                    to.flush().await?;
                    return Ok(false);
                }
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    let want = budget(left.min(buf.len() as u64), sent);
                    if want == 0 {
                        to.flush().await?;
                        return Ok(false);
                    }
                    let n = from.read(&mut buf[..want as usize]).await?;
                    if n == 0 {
                        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the chunked body ended early"));
                    }
                    to.write_all(&buf[..n]).await?;
                    left -= n as u64;
                    sent += n as u64;
                }
                to.flush().await?;
            }
        }
    }
}

/// Serves one client connection: each request read, scripted, and forwarded on one upstream
/// connection (opened when first needed).
async fn serve_http(client: TcpStream, target: &str, script: &Mutex<Script>) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let mut upstream: Option<BufReader<TcpStream>> = None;
    loop {
        let Some((first, mut headers)) = read_head(&mut client).await? else { return Ok(()) };
        let mut parts = first.splitn(3, ' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let request_target = parts.next().unwrap_or_default().to_owned();
        let request_framing = framing(&headers, false);
        // `Expect: 100-continue` is answered here, so the body comes at once whatever follows.
        if header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case("expect"));
            client.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let mut body = Vec::new();
        // The request's body is read whole before any fault acts (an S3 part is at most a few MiB).
        copy_body(&mut client, &mut body, request_framing, Stop::Never).await?;
        let head = RequestHead { method: method.clone(), target: request_target, headers: headers.clone(), body };
        let mut fault = take_fault(script, &head);
        while let Some(Fault::Slow(delay, then)) = fault {
            tokio::time::sleep(delay).await;
            fault = Some(*then);
        }
        match &fault {
            Some(Fault::Respond { status, headers: extra, body: answer }) => {
                let mut out_headers = extra.clone();
                out_headers.push(("Content-Length".into(), answer.len().to_string()));
                let mut out = write_head(&format!("HTTP/1.1 {status} {}", reason(*status)), &out_headers);
                out.extend_from_slice(answer);
                // Logged before the answer goes out: a client that acts on the answer (gives up
                // after its last try, say) must find the request in the log.
                log(script, &head, fault.as_ref(), Some(*status));
                client.get_mut().write_all(&out).await?;
                continue;
            }
            Some(Fault::Reset) => {
                log(script, &head, fault.as_ref(), None);
                reset(client.into_inner());
                return Ok(());
            }
            Some(Fault::Stall) => {
                log(script, &head, fault.as_ref(), None);
                // Held until the client gives up (or the proxy stops).
                let mut sink = [0u8; 1024];
                while client.read(&mut sink).await? > 0 {}
                return Ok(());
            }
            Some(Fault::Delay(d)) => tokio::time::sleep(*d).await,
            _ => {}
        }
        if upstream.is_none() {
            upstream = Some(BufReader::new(TcpStream::connect(target).await?));
        }
        let up = upstream.as_mut().unwrap();
        let mut request = write_head(&first, &headers);
        request.extend_from_slice(&head.body);
        up.get_mut().write_all(&request).await?;
        if matches!(fault, Some(Fault::ResetAfterForward)) {
            // Wait for the server's answer (so it has acted), then lose it.
            let _ = read_head(up).await;
            log(script, &head, fault.as_ref(), None);
            reset(client.into_inner());
            return Ok(());
        }
        // Interim 1xx answers from the server are passed over: the client was answered above.
        let (status_line, response_headers) = loop {
            let Some((line, hs)) = read_head(up).await? else {
                reset(client.into_inner());
                return Ok(());
            };
            if !line.split(' ').nth(1).is_some_and(|c| c.starts_with('1')) {
                break (line, hs);
            }
        };
        let status: u16 = status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let response_framing = if method == "HEAD" || status == 204 || status == 304 { Framing::None } else { framing(&response_headers, true) };
        if let Some(Fault::Rewrite(rewrite)) = &fault {
            assert!(matches!(response_framing, Framing::Length(_)), "Fault::Rewrite needs an answer with a Content-Length: {status_line}");
            let mut original = Vec::new();
            copy_body(up, &mut original, response_framing, Stop::Never).await?;
            let body = rewrite(&original);
            let mut headers: Vec<(String, String)> = response_headers.into_iter().filter(|(n, _)| !n.eq_ignore_ascii_case("content-length")).collect();
            headers.push(("Content-Length".into(), body.len().to_string()));
            let mut out = write_head(&status_line, &headers);
            out.extend_from_slice(&body);
            log(script, &head, fault.as_ref(), Some(status));
            client.get_mut().write_all(&out).await?;
            continue;
        }
        log(script, &head, fault.as_ref(), Some(status));
        client.get_mut().write_all(&write_head(&status_line, &response_headers)).await?;
        let stop = match fault {
            Some(Fault::CutBody { after }) | Some(Fault::StallBody { after }) => Stop::After(after),
            _ => Stop::Never,
        };
        let whole = copy_body(up, client.get_mut(), response_framing, stop).await?;
        if !whole {
            if let Some(Fault::StallBody { .. }) = fault {
                let mut sink = [0u8; 1024];
                while client.read(&mut sink).await? > 0 {}
                return Ok(());
            }
            // The body ends early with an orderly close (FIN), and the reset follows only once
            // the client has left (or after 10 s): a reset arriving first makes the client's
            // kernel drop what it holds unread, so a client slow to read on a loaded machine
            // would get fewer than `after` bytes, and this fault is a cut after `after` bytes.
            client.get_mut().flush().await?;
            let mut stream = client.into_inner();
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 1024];
            let left = tokio::time::timeout(Duration::from_secs(10), async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} });
            let _ = left.await;
            reset(stream);
            script.lock().unwrap().cuts_done += 1;
            return Ok(());
        }
        if matches!(response_framing, Framing::UntilClose) {
            return Ok(());
        }
    }
}

/// Forwards a TLS connection byte for byte, scripted as a whole.
async fn passthrough(client: TcpStream, target: String, script: Arc<Mutex<Script>>, number: u64) {
    let head = RequestHead { method: "CONNECT".into(), target: number.to_string(), headers: Vec::new(), body: Vec::new() };
    let fault = take_fault(&script, &head);
    log(&script, &head, fault.as_ref(), None);
    if matches!(fault, Some(Fault::Reset)) {
        reset(client);
        return;
    }
    let Ok(upstream) = TcpStream::connect(&target).await else {
        reset(client);
        return;
    };
    let limit = match fault {
        Some(Fault::CutBody { after }) | Some(Fault::StallBody { after }) => Some(after),
        _ => None,
    };
    if matches!(fault, Some(Fault::CutBody { .. })) {
        // Closed with a reset once the halves are dropped.
        reset_on_close(&client);
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let upward = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut up_write).await;
        let _ = up_write.shutdown().await;
    });
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let want = limit.map_or(buf.len() as u64, |l| (l - sent.min(l)).min(buf.len() as u64)) as usize;
        if want == 0 {
            break;
        }
        match up_read.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => {
                let _ = client_write.shutdown().await;
                let _ = upward.await;
                return;
            }
            Ok(n) => {
                if client_write.write_all(&buf[..n]).await.is_err() {
                    upward.abort();
                    return;
                }
                sent += n as u64;
            }
        }
    }
    if matches!(fault, Some(Fault::StallBody { .. })) {
        // Nothing more is passed on; the connection stays open until the client leaves.
        let _ = upward.await;
        drop(client_write);
    } else {
        upward.abort();
        drop(client_write);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Fault",
    }
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Matches requests whose method is `method` and whose path contains `path_part`.
pub fn request(method: &'static str, path_part: &'static str) -> impl Fn(&RequestHead) -> bool + Send + Sync + 'static {
    move |h: &RequestHead| h.method == method && h.path().contains(path_part)
}

/// Matches any request whose path contains `path_part`.
pub fn path(path_part: &'static str) -> impl Fn(&RequestHead) -> bool + Send + Sync + 'static {
    move |h: &RequestHead| h.path().contains(path_part)
}
