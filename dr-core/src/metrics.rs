//! Metrics the Jobs push to a Prometheus Pushgateway when asked (`DR_PUSHGATEWAY_URL`: the
//! DR policy's `kubectl dr enable --pushgateway-url`, the restore chart's
//! `monitoring.pushgatewayURL`): a short-lived Job is gone before Prometheus would scrape it.
//!
//! Each run POSTs its group (`job` kubectl_dr_backup with `namespace` and `policy`, or
//! kubectl_dr_restore with `namespace` and `release`). POST replaces only the metrics it
//! names, so a failed run leaves the last good run's `..._last_success_timestamp_seconds`.
//! Pushing is best effort: a Pushgateway that is down never fails a backup or a restore.

use std::fmt::Write as _;
use std::time::Duration;

/// One gauge of a push.
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub value: f64,
}

/// `{url}/metrics/job/{job}/{label}/{value}...`, each value base64url-encoded (`label@base64`)
/// unless it is plainly safe in a URL path.
pub fn group_url(url: &str, job: &str, grouping: &[(&str, &str)]) -> String {
    use base64::Engine as _;
    let mut out = format!("{}/metrics/job/{job}", url.trim_end_matches('/'));
    for (label, value) in grouping {
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
            let _ = write!(out, "/{label}/{value}");
        } else {
            // An empty value is `=` in base64 form, which the Pushgateway reads as "".
            let encoded = if value.is_empty() { "=".to_owned() } else { base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value) };
            let _ = write!(out, "/{label}@base64/{encoded}");
        }
    }
    out
}

/// The Prometheus text exposition of `gauges`.
pub fn exposition(gauges: &[Gauge]) -> String {
    let mut out = String::new();
    for g in gauges {
        let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge\n{} {}", g.name, g.help, g.name, g.name, g.value);
    }
    out
}

/// POSTs `gauges` to the group; logs (never fails) when the Pushgateway cannot take them.
pub async fn push(url: &str, job: &str, grouping: &[(&str, &str)], gauges: &[Gauge]) {
    let target = group_url(url, job, grouping);
    crate::init_crypto_provider();
    let client = match reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).timeout(Duration::from_secs(15)).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "could not push metrics: no HTTP client");
            return;
        }
    };
    let sent = client.post(&target).header("content-type", "text/plain; version=0.0.4").body(exposition(gauges)).send().await;
    match sent {
        Ok(r) if r.status().is_success() => tracing::info!(pushgateway = %url, job, "pushed metrics"),
        Ok(r) => tracing::warn!(pushgateway = %url, status = r.status().as_u16(), "the Pushgateway refused the metrics"),
        Err(e) => tracing::warn!(pushgateway = %url, error = %crate::error_text(&e), "could not push metrics to the Pushgateway"),
    }
}

fn now_seconds() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

/// A backup run's metrics: `summary` is `None` when it failed.
pub fn backup_gauges(summary: Option<&crate::job::BackupSummary>, seconds: f64) -> Vec<Gauge> {
    let now = now_seconds();
    let mut gauges = vec![
        Gauge { name: "kubectl_dr_backup_success", help: "1 if the last backup run succeeded, 0 if it failed.", value: f64::from(u8::from(summary.is_some())) },
        Gauge { name: "kubectl_dr_backup_duration_seconds", help: "How long the last backup run took.", value: seconds },
        Gauge { name: "kubectl_dr_backup_last_run_timestamp_seconds", help: "When the last backup run ended (Unix seconds).", value: now },
    ];
    if let Some(s) = summary {
        gauges.extend([
            Gauge { name: "kubectl_dr_backup_objects", help: "Objects in the last good restore point.", value: s.objects as f64 },
            Gauge { name: "kubectl_dr_backup_stored_bytes", help: "Bytes stored for the last good restore point.", value: s.stored_bytes as f64 },
            Gauge { name: "kubectl_dr_backup_last_success_timestamp_seconds", help: "When the last good backup ended (Unix seconds).", value: now },
        ]);
    }
    gauges
}

/// A restore's metrics: the report when there is one (a restore refused up front has none).
pub fn restore_gauges(succeeded: bool, report: Option<&crate::restore::RestoreReport>, seconds: f64) -> Vec<Gauge> {
    let mut gauges = vec![
        Gauge { name: "kubectl_dr_restore_success", help: "1 if the restore succeeded, 0 if it failed.", value: f64::from(u8::from(succeeded)) },
        Gauge { name: "kubectl_dr_restore_duration_seconds", help: "How long the restore took.", value: seconds },
        Gauge { name: "kubectl_dr_restore_last_run_timestamp_seconds", help: "When the restore ended (Unix seconds).", value: now_seconds() },
    ];
    if let Some(r) = report {
        gauges.extend([
            Gauge { name: "kubectl_dr_restore_objects", help: "Objects in the restored point.", value: r.objects as f64 },
            Gauge { name: "kubectl_dr_restore_restored_objects", help: "Objects the restore wrote (or found already restored).", value: r.restored as f64 },
            Gauge { name: "kubectl_dr_restore_failed_objects", help: "Objects the restore could not write.", value: r.failed as f64 },
        ]);
    }
    gauges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_urls_encode_what_a_path_cannot_carry() {
        assert_eq!(
            group_url("http://pg:9091/", "kubectl_dr_backup", &[("namespace", "kasten-io"), ("policy", "p")]),
            "http://pg:9091/metrics/job/kubectl_dr_backup/namespace/kasten-io/policy/p"
        );
        assert_eq!(group_url("http://pg", "j", &[("release", "a/b")]), "http://pg/metrics/job/j/release@base64/YS9i");
        assert_eq!(group_url("http://pg", "j", &[("release", "")]), "http://pg/metrics/job/j/release@base64/=");
    }

    #[test]
    fn the_exposition_is_prometheus_text() {
        let text = exposition(&[Gauge { name: "a_b", help: "What it is.", value: 1.5 }]);
        assert_eq!(text, "# HELP a_b What it is.\n# TYPE a_b gauge\na_b 1.5\n");
    }
}
