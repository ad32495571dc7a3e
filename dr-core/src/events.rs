//! Kubernetes Events the jobs leave on what they worked on (the Policy after a backup, the
//! restore Job after a restore), so `kubectl describe` and event-based alerting see them.

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::Client;
use serde_json::{json, Value};

/// The component named as the Events' reporter.
pub const REPORTING_CONTROLLER: &str = "dr.kubectl-dr.io/dr-job";

/// Creates an `events.k8s.io/v1` Event in `namespace` regarding `regarding` (an object
/// reference: apiVersion, kind, name, namespace, uid), Warning when `warning`.
pub async fn record(client: &Client, namespace: &str, regarding: Value, action: &str, reason: &str, warning: bool, note: &str) -> Result<(), kube::Error> {
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event"), "events");
    let events: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    // MicroTime: six fractional digits, as the API server requires.
    let now = time::OffsetDateTime::now_utc();
    let event_time = format!(
        "{}.{:06}Z",
        now.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).unwrap_or_default(),
        now.microsecond()
    );
    let event: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": event_name(regarding["name"].as_str().unwrap_or("dr"), now), "namespace": namespace},
        "eventTime": event_time,
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "dr-job".into()),
        "action": action,
        "reason": reason,
        "type": if warning { "Warning" } else { "Normal" },
        // The API server keeps at most 1 kB of a note.
        "note": note.chars().take(1000).collect::<String>(),
        "regarding": regarding,
    }))
    .map_err(kube::Error::SerdeError)?;
    events.create(&PostParams::default(), &event).await.map(|_| ())
}

/// An Event's name as client-go's recorder makes it: the object's name, a dot, the time in
/// nanoseconds in hex (a DNS subdomain, as the API server requires; a `generateName` ending in
/// `.` is refused by a real one). Long names are cut to fit the 253 bytes.
fn event_name(regarding: &str, now: time::OffsetDateTime) -> String {
    let suffix = format!(".{:x}", now.unix_timestamp_nanos());
    let keep = regarding.len().min(253 - suffix.len());
    let base = regarding[..keep].trim_end_matches(['.', '-']);
    format!("{}{suffix}", if base.is_empty() { "dr" } else { base })
}

#[cfg(test)]
mod tests {
    #[test]
    fn event_names_are_dns_subdomains_of_bounded_length() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
        assert_eq!(super::event_name("dr-restore", now), format!("dr-restore.{:x}", now.unix_timestamp_nanos()));
        let long = super::event_name(&"a".repeat(300), now);
        assert!(long.len() <= 253 && long.starts_with("aaa"), "{long}");
    }
}
