//! What a Job of the job image says when it ends, whichever command it ran: its report, and
//! when it failed, why and of what kind. `dr-job` writes it as the container's termination
//! message (one JSON line, under the 4 KiB Kubernetes keeps); the plugin reads it back from
//! the pod (`kubectl dr backup`, `kubectl dr restore`) instead of reading logs.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::failure::ErrorKind;

/// What Kubernetes keeps of a termination message is 4096 bytes; this leaves room.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4000;

/// A command's report, as its outcome carries it.
pub trait Report: Serialize + DeserializeOwned {
    /// The command, as a failure's text names it ("backup failed: ...").
    const COMMAND: &'static str;

    /// The report for the termination message: this default is the whole report; a report
    /// that can outgrow the message shortens itself.
    fn compact(&self) -> String {
        serde_json::to_string(self).expect("reports serialize")
    }
}

/// The outcome of one run of `dr-job <command>`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "R: DeserializeOwned"))]
pub struct JobOutcome<R> {
    /// Empty when the run succeeded.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<R>,
}

impl<R> Default for JobOutcome<R> {
    fn default() -> Self {
        JobOutcome { error: String::new(), kind: None, report: None }
    }
}

impl<R: Report> JobOutcome<R> {
    pub fn succeeded(report: R) -> Self {
        JobOutcome { report: Some(report), ..Default::default() }
    }

    pub fn failed(error: impl Into<String>, kind: ErrorKind, report: Option<R>) -> Self {
        JobOutcome { error: error.into(), kind: Some(kind), report }
    }

    pub fn is_success(&self) -> bool {
        self.error.is_empty() && self.kind.is_none()
    }

    /// The termination message: one JSON line under the limit. The report is compacted, and
    /// left out when even that does not fit; the error is cut to 1000 characters, and shorter
    /// still if its escaped JSON would not fit (control characters take six bytes each).
    pub fn termination_message(&self) -> String {
        let mut short: JobOutcome<R> = JobOutcome { error: self.error.chars().take(1000).collect(), kind: self.kind, report: None };
        let mut message = serde_json::to_value(&short).expect("outcomes serialize");
        if let Some(report) = &self.report {
            message["report"] = serde_json::from_str(&report.compact()).expect("a compact report is JSON");
        }
        let text = message.to_string();
        if text.len() <= TERMINATION_MESSAGE_LIMIT {
            return text;
        }
        // Without the report, the error halved until the line fits.
        loop {
            let text = serde_json::to_string(&short).expect("outcomes serialize");
            if text.len() <= TERMINATION_MESSAGE_LIMIT {
                return text;
            }
            let keep = short.error.chars().count() / 2;
            short.error = short.error.chars().take(keep).collect();
        }
    }

    /// Reads a termination message back. Older Jobs wrote a backup's report bare, and a
    /// failure as plain text ("backup failed: ..."): both read as the outcome they meant.
    pub fn parse(message: &str) -> Self {
        let message = message.trim();
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(message) {
            let is_outcome = value.as_object().is_some_and(|o| o.is_empty() || ["error", "kind", "report"].iter().any(|k| o.contains_key(*k)));
            if is_outcome {
                if let Ok(outcome) = serde_json::from_value(value) {
                    return outcome;
                }
            } else if let Ok(report) = serde_json::from_value(value) {
                return JobOutcome::succeeded(report);
            }
        }
        let first = message.lines().next().unwrap_or_default();
        let prefix = format!("{} failed: ", R::COMMAND);
        JobOutcome { error: first.strip_prefix(&prefix).unwrap_or(first).to_owned(), ..Default::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Counted {
        objects: u64,
        names: Vec<String>,
    }

    impl Report for Counted {
        const COMMAND: &'static str = "count";
    }

    #[test]
    fn an_outcome_reads_back_as_written_and_older_messages_read_as_they_meant() {
        let done = JobOutcome::succeeded(Counted { objects: 7, names: vec![] });
        assert_eq!(JobOutcome::<Counted>::parse(&done.termination_message()), done);
        assert!(done.is_success());
        let failed = JobOutcome::failed("the bucket is gone", ErrorKind::Transient, Some(Counted { objects: 2, names: vec![] }));
        let back = JobOutcome::<Counted>::parse(&failed.termination_message());
        assert_eq!(back, failed);
        assert!(!back.is_success());
        // An older Job's bare report, partial, and its plain failure text.
        assert_eq!(JobOutcome::<Counted>::parse(r#"{"objects":7}"#).report, Some(Counted { objects: 7, names: vec![] }));
        let old = JobOutcome::<Counted>::parse("count failed: wrong passphrase\n");
        assert_eq!((old.error.as_str(), old.report), ("wrong passphrase", None));
    }

    #[test]
    fn a_report_too_large_for_the_message_is_left_out_and_the_error_stays() {
        let big = Counted { objects: 1, names: vec!["x".repeat(100); 100] };
        let message = JobOutcome::failed("e".repeat(5000), ErrorKind::Incomplete, Some(big)).termination_message();
        assert!(message.len() <= TERMINATION_MESSAGE_LIMIT, "{}", message.len());
        let back = JobOutcome::<Counted>::parse(&message);
        assert_eq!((back.error.len(), back.kind, back.report), (1000, Some(ErrorKind::Incomplete), None));
        // An error whose JSON escapes outgrow the limit is cut further, and still reads back.
        let escaped = JobOutcome::<Counted>::failed("\u{1}".repeat(1000), ErrorKind::BadInput, None).termination_message();
        assert!(escaped.len() <= TERMINATION_MESSAGE_LIMIT, "{}", escaped.len());
        let back = JobOutcome::<Counted>::parse(&escaped);
        assert_eq!(back.kind, Some(ErrorKind::BadInput));
        assert!(!back.error.is_empty() && back.error.chars().all(|c| c == '\u{1}'), "{back:?}");
    }
}
