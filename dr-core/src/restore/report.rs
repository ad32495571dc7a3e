//! The result of a restore, one type both ways: the Job logs it and writes it as its
//! termination message, the plugin reads it back with the same type.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Failure messages kept per kind (the counts are always complete).
pub(super) const REASONS_KEPT: usize = 5;
/// Names kept per list (existing objects, changed node ports).
pub(super) const NAMES_KEPT: usize = 20;

/// What happened to the objects of one kind.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KindReport {
    /// Created by this run.
    pub restored: u64,
    /// Restored by an earlier run of a restore from the same point (a re-run).
    #[serde(skip_serializing_if = "is_zero")]
    pub already_restored: u64,
    /// Existed and were replaced (override).
    #[serde(skip_serializing_if = "is_zero")]
    pub replaced: u64,
    /// Left out, by reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub failed: u64,
    /// The first few failure reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Objects restored without an ownerReference whose owner is not on this cluster.
    #[serde(skip_serializing_if = "is_zero")]
    pub owner_references_dropped: u64,
    /// Existing objects (first few names) left as they were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub existing: Vec<String>,
    /// Objects whose status was written back (`--restore-status`).
    #[serde(skip_serializing_if = "is_zero")]
    pub status_restored: u64,
    /// Node ports that were taken on this cluster, so the cluster allocated others:
    /// `namespace/name port: old -> new` (first few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_ports_changed: Vec<String>,
    /// Existing objects made what the point says (`existing: update`).
    #[serde(skip_serializing_if = "is_zero")]
    pub updated: u64,
    /// Existing objects (not written by this restore) that already equal the point.
    #[serde(skip_serializing_if = "is_zero")]
    pub unchanged: u64,
    /// Existing objects that differ from the point (first few names): left as they were, or
    /// updated with `existing: update`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differs: Vec<String>,
    /// Objects written in another API version than the point holds them in, by that version.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub converted_from: BTreeMap<String, u64>,
    /// Objects a resource modifier rule changed.
    #[serde(skip_serializing_if = "is_zero")]
    pub modified: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl KindReport {
    pub(super) fn handled(&self) -> u64 {
        self.restored + self.already_restored + self.replaced + self.updated + self.skipped.values().sum::<u64>() + self.failed
    }
}

/// One thing that would stop or block the restore, found before it writes (the preflight).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Finding {
    /// Which check: `api`, `class`, `collision`, `webhook`, `quota`.
    pub check: String,
    pub message: String,
    /// The objects it touches (first few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
}

/// The result of a restore: logged, written as the termination message, shown by the plugin.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct RestoreReport {
    pub source_cluster_id: String,
    pub restore_point: String,
    pub mode: String,
    pub location: String,
    pub dry_run: bool,
    pub objects: u64,
    pub restored: u64,
    pub replaced: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub updated: u64,
    pub skipped: u64,
    pub failed: u64,
    pub seconds: f64,
    /// What would stop or block the restore (all checks with a dry-run or preflight; the
    /// blocking webhooks on every restore).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// How many times the point's archive was read (downloaded, on S3): the plan reads it once
    /// and the writes work from the plan.
    pub archive_reads: u64,
    /// What this process spent opening points, the restore's own open included: one key
    /// derivation and one manifest read when the point was opened once and handed on.
    pub point_opens: crate::point::PointOpens,
    pub by_kind: BTreeMap<String, KindReport>,
}

impl RestoreReport {
    pub(super) fn total(&self) -> u64 {
        self.by_kind.values().map(KindReport::handled).sum()
    }

    pub(super) fn finish(&mut self, seconds: f64) {
        self.seconds = seconds;
        self.restored = self.by_kind.values().map(|k| k.restored + k.already_restored).sum();
        self.replaced = self.by_kind.values().map(|k| k.replaced).sum();
        self.updated = self.by_kind.values().map(|k| k.updated).sum();
        self.skipped = self.by_kind.values().map(|k| k.skipped.values().sum::<u64>()).sum();
        self.failed = self.by_kind.values().map(|k| k.failed).sum();
    }

    /// The report for the 4 KiB termination message: whole if it fits, else without the
    /// lists of names, then with one failure reason per kind, then totals only.
    pub fn compact(&self) -> String {
        const LIMIT: usize = 3800;
        let json = serde_json::to_string(self).expect("report serializes");
        if json.len() <= LIMIT {
            return json;
        }
        let mut short = self.clone();
        for k in short.by_kind.values_mut() {
            k.existing.clear();
            k.differs.clear();
            k.node_ports_changed.truncate(1);
        }
        for f in &mut short.findings {
            f.objects.truncate(1);
        }
        let json = serde_json::to_string(&short).expect("report serializes");
        if json.len() <= LIMIT {
            return json;
        }
        for k in short.by_kind.values_mut() {
            k.failures.truncate(1);
        }
        let json = serde_json::to_string(&short).expect("report serializes");
        if json.len() <= LIMIT {
            return json;
        }
        short.by_kind.clear();
        short.findings.truncate(3);
        serde_json::to_string(&short).expect("report serializes")
    }
}

/// What the restore Job says when it ends (`job::outcome`): its report, and when it failed,
/// why and of what kind.
pub type RestoreOutcome = crate::job::outcome::JobOutcome<RestoreReport>;

impl crate::job::outcome::Report for RestoreReport {
    const COMMAND: &'static str = "restore";

    fn compact(&self) -> String {
        RestoreReport::compact(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::ErrorKind;

    #[test]
    fn a_large_report_still_fits_the_termination_message_and_reads_back() {
        let mut report = RestoreReport { restore_point: "p".into(), objects: 100_000, ..Default::default() };
        for i in 0..400 {
            let k = report.by_kind.entry(format!("Kind{i}.example.com")).or_default();
            k.restored = 250;
            k.failures = vec!["x".repeat(200); 5];
            k.existing = vec!["y".repeat(50); 20];
        }
        let outcome = RestoreOutcome { error: "restore failed".into(), kind: Some(ErrorKind::Incomplete), report: Some(report.clone()) };
        let message = outcome.termination_message();
        assert!(message.len() <= 4000, "{}", message.len());
        let back = RestoreOutcome::parse(&message);
        assert_eq!(back.kind, Some(ErrorKind::Incomplete));
        assert_eq!(back.report.unwrap().objects, 100_000);
        // An older Job's plain message reads as its error.
        assert_eq!(RestoreOutcome::parse("restore failed: wrong passphrase\n").error, "wrong passphrase");
    }
}
