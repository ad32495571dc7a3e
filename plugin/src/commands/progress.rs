//! Showing a Job's live progress (`dr_core::progress` lines in its log): on a terminal one
//! redrawn line with a bar; otherwise a plain line at each phase and every ten seconds, so
//! CI logs and pipes stay readable. Other messages go through [`say`], which clears the bar
//! first so the two never share a line.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dr_core::progress::Progress;

/// How often a plain (non-terminal) display prints between phases.
const PLAIN_EVERY: Duration = Duration::from_secs(10);

struct Display {
    terminal: bool,
    /// The bar on screen now (terminal), to redraw after a message.
    bar: Option<String>,
    last_plain: Option<(Instant, String)>,
}

static DISPLAY: Mutex<Option<Display>> = Mutex::new(None);

fn with_display<T>(f: impl FnOnce(&mut Display) -> T) -> T {
    let mut guard = DISPLAY.lock().expect("not poisoned");
    let display = guard.get_or_insert_with(|| Display { terminal: std::io::stderr().is_terminal(), bar: None, last_plain: None });
    f(display)
}

/// Prints a message on stderr, on its own line even while a bar is shown.
pub fn say(message: &str) {
    with_display(|d| {
        let mut err = std::io::stderr().lock();
        if d.terminal && d.bar.is_some() {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{message}");
        if let (true, Some(bar)) = (d.terminal, &d.bar) {
            let _ = write!(err, "{bar}");
        }
        let _ = err.flush();
    });
}

/// Shows one progress update.
pub fn show(p: &Progress) {
    with_display(|d| {
        let mut err = std::io::stderr().lock();
        if d.terminal {
            let bar = bar_line(p);
            let _ = write!(err, "\r\x1b[2K{bar}");
            let _ = err.flush();
            d.bar = Some(bar);
        } else {
            let due = match &d.last_plain {
                None => true,
                Some((at, phase)) => *phase != p.phase || at.elapsed() >= PLAIN_EVERY,
            };
            if due {
                let _ = writeln!(err, "{}", plain_line(p));
                d.last_plain = Some((Instant::now(), p.phase.clone()));
            }
        }
    });
}

/// Ends the bar (the line stays, as the last word on progress).
pub fn finish() {
    with_display(|d| {
        if d.terminal && d.bar.take().is_some() {
            let _ = writeln!(std::io::stderr());
        }
    });
}

fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

fn phase(p: &Progress) -> String {
    if p.steps > 0 {
        format!("{} ({}/{})", p.phase, p.step, p.steps)
    } else {
        p.phase.clone()
    }
}

/// `restore [########------------]  40%  4000/10000 objects  workloads (5/7)  1500/s  0:03 ETA 0:04`
pub fn bar_line(p: &Progress) -> String {
    const WIDTH: usize = 24;
    let mut line = format!("{:<7}", p.operation);
    if p.total > 0 {
        let fraction = (p.done as f64 / p.total as f64).clamp(0.0, 1.0);
        let filled = (fraction * WIDTH as f64).round() as usize;
        line.push_str(&format!(" [{}{}] {:>3.0}%  {}/{} objects", "#".repeat(filled), "-".repeat(WIDTH - filled), fraction * 100.0, p.done, p.total));
    } else {
        line.push_str(&format!(" {} objects", p.done));
    }
    line.push_str(&format!("  {}  {:.0}/s  {}", phase(p), p.rate, clock(p.elapsed_seconds)));
    if let Some(eta) = p.eta_seconds {
        line.push_str(&format!(" ETA {}", clock(eta)));
    }
    line
}

/// `restore: workloads (5/7): 4000/10000 objects, 1500/s, elapsed 0:03, ETA 0:04`
pub fn plain_line(p: &Progress) -> String {
    let objects = if p.total > 0 { format!("{}/{} objects", p.done, p.total) } else { format!("{} objects", p.done) };
    let mut line = format!("{}: {}: {objects}, {:.0}/s, elapsed {}", p.operation, phase(p), p.rate, clock(p.elapsed_seconds));
    if let Some(eta) = p.eta_seconds {
        line.push_str(&format!(", ETA {}", clock(eta)));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_where_the_job_is() {
        let p = Progress {
            operation: "restore".into(),
            phase: "workloads".into(),
            step: 5,
            steps: 7,
            done: 4000,
            total: 10_000,
            elapsed_seconds: 3.0,
            rate: 1333.4,
            eta_seconds: Some(4.5),
        };
        assert_eq!(bar_line(&p), "restore [##########--------------]  40%  4000/10000 objects  workloads (5/7)  1333/s  0:03 ETA 0:05");
        assert_eq!(plain_line(&p), "restore: workloads (5/7): 4000/10000 objects, 1333/s, elapsed 0:03, ETA 0:05");
        let b = Progress {
            operation: "backup".into(),
            phase: "apps/v1/Deployment".into(),
            step: 12,
            steps: 40,
            done: 340,
            elapsed_seconds: 3725.0,
            rate: 0.1,
            ..Default::default()
        };
        assert_eq!(bar_line(&b), "backup  340 objects  apps/v1/Deployment (12/40)  0/s  1:02:05");
    }
}
