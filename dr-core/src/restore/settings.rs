//! What a restore is asked to do; checked before anything is read or written.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use time::OffsetDateTime;

use super::controls::RestoreControls;
use super::RestoreError;
use crate::catalog::Category;
use crate::passphrase::ResolveOptions;
use crate::point;

pub const DEFAULT_CONCURRENCY: usize = 16;
/// A restore's own rate limit; the API server's priority and fairness still applies (429s are
/// honoured).
pub const DEFAULT_QPS: u32 = 2000;
/// The longest `restore.timeout` (minutes): a week. Longer values would overflow the Job's
/// `activeDeadlineSeconds` arithmetic and mean nothing for a restore.
pub const MAX_TIMEOUT_MINUTES: u64 = 7 * 24 * 60;

/// Whose status comes back (`--restore-status`, chart value `restore.status`). Backups keep
/// every object's status; a restore writes it back through the `/status` subresource only
/// for the kinds named here. Off by default, as in Velero: most status describes the old
/// cluster (pod IPs, node names, ready replicas) and its controllers rebuild it; the kinds
/// whose status is the only record of something (an operator's custom resources) are the
/// ones to name.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum StatusKinds {
    #[default]
    None,
    All,
    /// Kind keys as the report shows them (`Widget.example.com`, `Service`) or resource names
    /// as kubectl takes them (`widgets.example.com`, `services`), compared without case.
    Named(BTreeSet<String>),
}

impl StatusKinds {
    /// `""` (none), `all`, or a comma list of kinds or resources.
    pub fn parse(list: &str) -> Result<Self, String> {
        let names: BTreeSet<String> = list.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect();
        if names.is_empty() {
            return Ok(StatusKinds::None);
        }
        if names.contains("all") {
            return if names.len() == 1 { Ok(StatusKinds::All) } else { Err("`all` cannot be combined with kinds".into()) };
        }
        if let Some(bad) = names.iter().find(|n| !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')) {
            return Err(format!("{bad:?} is not a kind (Kind.group, like Widget.example.com) or resource (widgets.example.com)"));
        }
        Ok(StatusKinds::Named(names))
    }

    /// Whether the status of objects of `kind_key` (`Kind.group`), served as `plural` in
    /// `group`, is restored.
    pub fn includes(&self, kind_key: &str, plural: &str, group: &str) -> bool {
        match self {
            StatusKinds::None => false,
            StatusKinds::All => true,
            StatusKinds::Named(names) => {
                let resource = if group.is_empty() { plural.to_owned() } else { format!("{plural}.{group}") };
                names.contains(&kind_key.to_lowercase()) || names.contains(&resource.to_lowercase())
            }
        }
    }
}

/// What a restore needs; the Job reads it from its `DR_*` variables (`dr-job`'s `settings.rs`),
/// the plugin's `--dry-run` from its flags.
#[derive(Clone, Debug)]
pub struct RestoreSettings {
    /// The DR namespace: where the profile, `k10-dr-secret` and the ownership ConfigMap live.
    pub namespace: String,
    pub source_cluster_id: String,
    pub profile: String,
    /// The point to restore, by ID (`restorePointID`): chosen over `point_in_time`.
    pub point_id: Option<String>,
    pub point_in_time: Option<OffsetDateTime>,
    pub skip: BTreeSet<Category>,
    pub quick_mode: bool,
    pub override_resources: bool,
    pub timeout: Duration,
    /// Where a file profile's volume is mounted; `None` where none is.
    pub location_mount: Option<PathBuf>,
    pub resolve: ResolveOptions,
    /// Objects written at once within a tier.
    pub concurrency: usize,
    /// Requests per second the restore allows itself.
    pub qps: u32,
    /// Who holds the Lease: the same restore (Job) may take it over after a crash.
    pub holder: String,
    /// Whether the restore writes, or plans only.
    pub run: RunMode,
    /// Kinds whose status is written back.
    pub restore_status: StatusKinds,
    /// Where the plan keeps the point's objects between reading and writing them (encrypted
    /// with a key that lives only in memory); the system's temporary directory by default.
    pub work_dir: Option<PathBuf>,
    /// What comes back, under which names, and what happens to existing objects.
    pub controls: RestoreControls,
    /// Resource modifier rules given directly (where they came from, and the YAML) instead
    /// of the ConfigMap `controls.resource_modifiers` names: the plugin's dry-run, which
    /// writes nothing.
    pub inline_modifiers: Option<(String, String)>,
    /// What the restore writes into: the cluster that takes the location over, or a drill's
    /// sandbox.
    pub destination: Destination,
}

/// Whether a restore writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Read the point and the cluster, write nothing, and run every preflight check (the
    /// plugin's `--dry-run` and `--preflight` both run so; they differ only in what they print).
    Plan,
    /// Restore: take the Lease, write, report.
    Apply,
}

/// What a restore writes into, which decides who maintains the location afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The recovery cluster: the restore leaves the ownership ConfigMap there, so it does no
    /// maintenance on the location until it takes ownership (`crate::ownership`).
    Recovery,
    /// Sandbox namespaces of a drill, perhaps on the source cluster itself: the location stays
    /// the source cluster's, so nothing claims it.
    Sandbox,
}

impl RestoreSettings {
    /// Defaults for everything but what names the restore.
    pub fn new(namespace: &str, source_cluster_id: &str, profile: &str) -> Self {
        Self {
            namespace: namespace.into(),
            source_cluster_id: source_cluster_id.into(),
            profile: profile.into(),
            point_id: None,
            point_in_time: None,
            skip: BTreeSet::new(),
            quick_mode: false,
            override_resources: false,
            timeout: Duration::from_secs(30 * 60),
            location_mount: None,
            resolve: ResolveOptions::default(),
            concurrency: DEFAULT_CONCURRENCY,
            qps: DEFAULT_QPS,
            holder: "kubectl-dr".into(),
            run: RunMode::Apply,
            restore_status: StatusKinds::None,
            work_dir: None,
            controls: RestoreControls::default(),
            inline_modifiers: None,
            destination: Destination::Recovery,
        }
    }

    /// Refuses settings that cannot work, before anything is read or written.
    pub fn check(&self) -> Result<(), RestoreError> {
        point::validate_cluster_id(&self.source_cluster_id)?;
        if self.profile.is_empty() {
            return Err(RestoreError::Invalid("profile.name is required: the location profile the source cluster's DR policy wrote to".into()));
        }
        if self.quick_mode && !self.override_resources {
            return Err(RestoreError::Invalid(
                "quick mode restores may create or replace the DR platform's resources: set quickMode.overrideResources=true (--override-resources) as well"
                    .into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(RestoreError::Invalid("restore.timeout must be a positive number of minutes".into()));
        }
        if self.timeout > Duration::from_secs(MAX_TIMEOUT_MINUTES * 60) {
            return Err(RestoreError::Invalid(format!("restore.timeout is at most {MAX_TIMEOUT_MINUTES} minutes (a week)")));
        }
        if self.concurrency == 0 || self.qps == 0 {
            return Err(RestoreError::Invalid("restore concurrency and QPS must be positive".into()));
        }
        self.controls.check(&self.namespace).map_err(RestoreError::Invalid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut s = RestoreSettings::new("kasten-io", "0b6bd9b4-2c4a-4d1e-9a3e-3b7f0f6a1c2d", "s3");
        assert!(s.check().is_ok());
        s.quick_mode = true;
        assert!(s.check().unwrap_err().to_string().contains("quickMode.overrideResources=true"));
        s.override_resources = true;
        s.timeout = Duration::ZERO;
        assert!(s.check().unwrap_err().to_string().contains("restore.timeout"));
        s.timeout = Duration::from_secs((MAX_TIMEOUT_MINUTES + 1) * 60);
        assert!(s.check().unwrap_err().to_string().contains("at most"));
    }

    #[test]
    fn status_kinds_name_kinds_or_resources() {
        assert_eq!(StatusKinds::parse("").unwrap(), StatusKinds::None);
        assert_eq!(StatusKinds::parse("all").unwrap(), StatusKinds::All);
        assert!(StatusKinds::parse("all,services").is_err());
        assert!(StatusKinds::parse("wid gets").is_err());
        let named = StatusKinds::parse("Widget.example.com, services").unwrap();
        assert!(named.includes("Widget.example.com", "widgets", "example.com"));
        assert!(named.includes("Service", "services", ""));
        assert!(!named.includes("Deployment.apps", "deployments", "apps"));
        let by_resource = StatusKinds::parse("widgets.example.com").unwrap();
        assert!(by_resource.includes("Widget.example.com", "widgets", "example.com"));
    }
}
