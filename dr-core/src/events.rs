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
    let event_time = format!("{}.{:06}Z", now.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")).unwrap_or_default(), now.microsecond());
    let name = regarding["name"].as_str().unwrap_or("dr").to_owned();
    let event: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": namespace},
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
