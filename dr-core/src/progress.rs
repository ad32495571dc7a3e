//! Live progress of a backup or a restore. The Job logs a `progress` line (JSON, on stderr
//! with its other logs) when its phase changes and every second in between; `kubectl dr
//! backup` and `kubectl dr restore` follow the pod's log and show it (a bar on a terminal,
//! plain lines otherwise). The log is the channel because it needs no write access to the
//! API (the Jobs' grants stay as they are) and is there on every cluster; the termination
//! message stays the verdict.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The log message of a progress line; its `progress` field is a [`Progress`] as JSON.
pub const LOG_MESSAGE: &str = "progress";

/// Where a backup or a restore is, as one log line carries it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Progress {
    /// `backup` or `restore`.
    pub operation: String,
    /// What it is doing: the restore's tier, the resource a backup reads.
    pub phase: String,
    /// Which step of how many (a restore's tiers, a backup's resources); 0 of 0 when not known.
    pub step: u64,
    pub steps: u64,
    /// Objects handled so far, and of how many (0: not known yet; a backup knows no total).
    pub done: u64,
    pub total: u64,
    pub elapsed_seconds: f64,
    /// Objects a second since the start.
    pub rate: f64,
    /// Seconds left at this rate, when the total is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<f64>,
}

impl Progress {
    /// The progress a log line carries: the Job's JSON log line whose message is
    /// [`LOG_MESSAGE`]. Anything else (other logs, the report, a truncated line) is `None`.
    pub fn from_log_line(line: &str) -> Option<Progress> {
        let line = line.trim();
        if !line.starts_with('{') || !line.contains("\"progress\"") {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = v.get("fields")?;
        if fields.get("message")?.as_str()? != LOG_MESSAGE {
            return None;
        }
        serde_json::from_str(fields.get("progress")?.as_str()?).ok()
    }
}

/// Counts a running operation's progress and logs it.
pub struct Tracker {
    operation: &'static str,
    started: Instant,
    phase: Mutex<(String, u64, u64)>,
    done: AtomicU64,
    total: AtomicU64,
}

impl Tracker {
    pub fn new(operation: &'static str) -> Arc<Self> {
        Arc::new(Self { operation, started: Instant::now(), phase: Mutex::default(), done: AtomicU64::new(0), total: AtomicU64::new(0) })
    }

    /// A new phase (step `step` of `steps`), logged at once.
    pub fn phase(&self, phase: &str, step: u64, steps: u64) {
        *self.phase.lock().expect("not poisoned") = (phase.to_owned(), step, steps);
        self.log();
    }

    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Progress {
        let (phase, step, steps) = self.phase.lock().expect("not poisoned").clone();
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { done as f64 / elapsed } else { 0.0 };
        let eta_seconds = (total > 0 && rate > 0.0).then(|| total.saturating_sub(done) as f64 / rate);
        Progress { operation: self.operation.into(), phase, step, steps, done, total, elapsed_seconds: elapsed, rate, eta_seconds }
    }

    pub fn log(&self) {
        let line = serde_json::to_string(&self.snapshot()).expect("progress serializes");
        tracing::info!(progress = %line, "{LOG_MESSAGE}");
    }

    /// Logs the progress every `every` until the returned guard is dropped.
    pub fn tick(self: &Arc<Self>, every: Duration) -> TickGuard {
        let me = self.clone();
        TickGuard(tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.tick().await;
            loop {
                interval.tick().await;
                me.log();
            }
        }))
    }
}

/// Stops a [`Tracker::tick`] when dropped.
pub struct TickGuard(tokio::task::JoinHandle<()>);

impl Drop for TickGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often the Jobs log their progress between phases.
pub const TICK: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_reads_back_and_other_lines_do_not() {
        let t = Tracker::new("restore");
        t.set_total(200);
        t.add_done(50);
        *t.phase.lock().unwrap() = ("workloads".into(), 5, 7);
        let p = t.snapshot();
        // As tracing's JSON formatter writes it (the field is a string holding JSON).
        let line = serde_json::json!({"timestamp": "t", "level": "INFO", "fields": {"message": "progress", "progress": serde_json::to_string(&p).unwrap()}, "target": "dr_core::progress"}).to_string();
        // Floats come back within serde_json's parsing precision (no float_roundtrip): relative,
        // as the rate of 50 objects done in microseconds is in the millions.
        let back = Progress::from_log_line(&line).expect("a progress line");
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0);
        assert!(close(back.rate, p.rate) && close(back.elapsed_seconds, p.elapsed_seconds), "{back:?} vs {p:?}");
        assert_eq!(Progress { rate: p.rate, elapsed_seconds: p.elapsed_seconds, eta_seconds: p.eta_seconds, ..back }, p);
        assert_eq!((p.done, p.total, p.step, p.steps, p.phase.as_str()), (50, 200, 5, 7, "workloads"));
        assert!(p.eta_seconds.unwrap() > 0.0);
        for other in ["", "not json", r#"{"fields":{"message":"restore complete","progress":"{}"}}"#, r#"{"sourceClusterId":"a","progress":1}"#] {
            assert_eq!(Progress::from_log_line(other), None, "{other}");
        }
    }
}
