//! Restoring a point taken on an older Kubernetes onto a newer one.
//!
//! - Objects the cluster makes and manages itself belong to the target: the APIServices the
//!   aggregator registers for the API server's own group versions, the API priority and
//!   fairness defaults, bootstrap RBAC, the `system-` PriorityClasses, the `kubernetes`
//!   Service and its ServiceCIDR, Service IP reservations (IPAddress), per-node objects
//!   (CSINode, VolumeAttachment) and certificate requests. The plan leaves them out and says
//!   so (`managed_by_target`).
//! - An object in an API version the target no longer serves is converted (`convert`): the
//!   built-in removals by a conversion of its own (pure functions, table-tested below);
//!   anything else is written in the version the target prefers for its group and kind,
//!   when the target serves that kind at all; otherwise it is reported per object.

use serde_json::{json, Map, Value};

/// Why the target cluster, not the restore, owns `object`; `None` for everything else.
pub fn managed_by_target(object: &Value) -> Option<&'static str> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let kind = object["kind"].as_str().unwrap_or_default();
    let meta = &object["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    match (group, kind) {
        ("apiregistration.k8s.io", "APIService") if meta["labels"]["kube-aggregator.kubernetes.io/automanaged"].is_string() => {
            Some("managed by the target cluster (its API server registers its own API versions)")
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration") if meta["annotations"]["apf.kubernetes.io/autoupdate-spec"] == "true" => {
            Some("managed by the target cluster (API priority and fairness defaults)")
        }
        ("rbac.authorization.k8s.io", _) if meta["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults" => {
            Some("managed by the target cluster (bootstrap RBAC)")
        }
        ("scheduling.k8s.io", "PriorityClass") if name.starts_with("system-") => Some("managed by the target cluster (system PriorityClass)"),
        ("", "Service") if name == "kubernetes" && meta["namespace"] == "default" => Some("managed by the target cluster (the API server's Service)"),
        // The old cluster's Service IP reservations: the target allocates its own (restored
        // Services get new cluster IPs), and these would hold its addresses for nothing.
        ("networking.k8s.io", "IPAddress") => Some("managed by the target cluster (Service IP allocation)"),
        ("networking.k8s.io", "ServiceCIDR") if name == "kubernetes" => Some("managed by the target cluster (its service range)"),
        // Per node of the old cluster, written by its kubelets and controllers.
        ("storage.k8s.io", "CSINode" | "VolumeAttachment") => Some("managed by the target cluster (per node)"),
        ("certificates.k8s.io", "CertificateSigningRequest") => Some("managed by the target cluster (the old cluster's certificate requests)"),
        _ => None,
    }
}

/// The group/version/kind an object of a removed version is converted to, and by what.
type Conversion = (&'static str, fn(&mut Value) -> Result<(), String>);

/// The built-in conversion for `group`/`version` `kind`, with the apiVersion it writes.
fn builtin(group: &str, version: &str, kind: &str) -> Option<Conversion> {
    Some(match (group, version, kind) {
        ("extensions" | "networking.k8s.io", "v1beta1", "Ingress") => ("networking.k8s.io/v1", ingress_v1),
        ("networking.k8s.io", "v1beta1", "IngressClass") => ("networking.k8s.io/v1", same_shape),
        ("extensions", "v1beta1", "NetworkPolicy") => ("networking.k8s.io/v1", same_shape),
        ("extensions", "v1beta1", "Deployment" | "DaemonSet" | "ReplicaSet")
        | ("apps", "v1beta1" | "v1beta2", "Deployment" | "DaemonSet" | "ReplicaSet" | "StatefulSet") => ("apps/v1", workload_v1),
        ("extensions" | "policy", "v1beta1", "PodSecurityPolicy") => ("", no_successor),
        ("policy", "v1beta1", "PodDisruptionBudget") => ("policy/v1", pdb_v1),
        ("batch", "v1beta1" | "v2alpha1", "CronJob") => ("batch/v1", same_shape),
        ("autoscaling", "v2beta1", "HorizontalPodAutoscaler") => ("autoscaling/v2", hpa_v2beta1_to_v2),
        ("autoscaling", "v2beta2", "HorizontalPodAutoscaler") => ("autoscaling/v2", same_shape),
        ("apiextensions.k8s.io", "v1beta1", "CustomResourceDefinition") => ("apiextensions.k8s.io/v1", crd_v1),
        ("flowcontrol.apiserver.k8s.io", "v1beta1" | "v1beta2", "PriorityLevelConfiguration") => ("flowcontrol.apiserver.k8s.io/v1", priority_level_v1),
        ("flowcontrol.apiserver.k8s.io", "v1beta1" | "v1beta2" | "v1beta3", "FlowSchema")
        | ("flowcontrol.apiserver.k8s.io", "v1beta3", "PriorityLevelConfiguration") => ("flowcontrol.apiserver.k8s.io/v1", same_shape),
        _ => return None,
    })
}

/// What happened to an object whose version the target does not serve.
#[derive(Debug, PartialEq)]
pub enum Converted {
    /// Converted to this apiVersion.
    To(String),
    /// Neither a conversion nor another served version: the reason, for the report.
    Unservable(String),
}

/// Converts `object` when the target does not serve its version. `served(group, kind)` is
/// the versions the target serves for that kind, preferred first (empty: none). `None`: the
/// object is written as it is (served, or a kind the point's own CRDs will define).
pub fn convert(object: &mut Value, served: &dyn Fn(&str, &str) -> Vec<String>) -> Option<Converted> {
    let api_version = object["apiVersion"].as_str()?.to_owned();
    let kind = object["kind"].as_str()?.to_owned();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let versions = served(group, &kind);
    if versions.iter().any(|v| v == version) {
        return None;
    }
    if let Some((to, conversion)) = builtin(group, version, &kind) {
        if let Err(why) = conversion(object) {
            return Some(Converted::Unservable(why));
        }
        let (to_group, to_version) = to.split_once('/').unwrap_or(("", to));
        if served(to_group, &kind).iter().any(|v| v == to_version) {
            object["apiVersion"] = json!(to);
            return Some(Converted::To(to.into()));
        }
        return Some(Converted::Unservable(format!("{api_version} {kind} converts to {to}, which this cluster does not serve either")));
    }
    let preferred = versions.first()?;
    let to = if group.is_empty() { preferred.clone() } else { format!("{group}/{preferred}") };
    object["apiVersion"] = json!(to);
    Some(Converted::To(to))
}

fn same_shape(_: &mut Value) -> Result<(), String> {
    Ok(())
}

fn no_successor(o: &mut Value) -> Result<(), String> {
    Err(format!(
        "{} was removed in Kubernetes 1.25 and has no successor kind: use Pod Security Admission (namespace labels) instead",
        o["kind"].as_str().unwrap_or_default()
    ))
}

fn spec(o: &mut Value) -> &mut Map<String, Value> {
    if !o["spec"].is_object() {
        o["spec"] = json!({});
    }
    o["spec"].as_object_mut().expect("an object")
}

/// `serviceName`/`servicePort` backends become `service: {name, port: {number|name}}`;
/// `spec.backend` is `spec.defaultBackend`; a path without a type is `ImplementationSpecific`
/// (v1beta1's behaviour).
fn ingress_v1(o: &mut Value) -> Result<(), String> {
    fn backend(b: &mut Value) {
        let Some(m) = b.as_object_mut() else { return };
        if let Some(name) = m.remove("serviceName") {
            let port = match m.remove("servicePort") {
                Some(Value::Number(n)) => json!({"number": n}),
                Some(Value::String(s)) => match s.parse::<u64>() {
                    Ok(n) => json!({"number": n}),
                    Err(_) => json!({"name": s}),
                },
                _ => json!({}),
            };
            m.insert("service".into(), json!({"name": name, "port": port}));
        }
    }
    let spec = spec(o);
    if let Some(mut b) = spec.remove("backend") {
        backend(&mut b);
        spec.insert("defaultBackend".into(), b);
    }
    for rule in spec.get_mut("rules").and_then(Value::as_array_mut).into_iter().flatten() {
        for path in rule.pointer_mut("/http/paths").and_then(Value::as_array_mut).into_iter().flatten() {
            backend(&mut path["backend"]);
            if path.get("pathType").is_none() {
                path["pathType"] = json!("ImplementationSpecific");
            }
        }
    }
    Ok(())
}

/// apps/v1 requires a selector (the betas defaulted it from the template's labels) and has
/// no rollback fields.
fn workload_v1(o: &mut Value) -> Result<(), String> {
    let labels = o.pointer("/spec/template/metadata/labels").cloned();
    let spec = spec(o);
    spec.remove("rollbackTo");
    spec.remove("templateGeneration");
    if spec.get("selector").is_none_or(Value::is_null) {
        let labels =
            labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty())).ok_or("it has no selector and its pod template no labels to make one from")?;
        spec.insert("selector".into(), json!({"matchLabels": labels}));
    }
    Ok(())
}

/// An empty selector selected no pods in policy/v1beta1 and selects every pod in policy/v1:
/// it is dropped, which keeps "none".
fn pdb_v1(o: &mut Value) -> Result<(), String> {
    let spec = spec(o);
    if spec.get("selector").is_some_and(|s| s.as_object().is_some_and(|m| m.is_empty())) {
        spec.remove("selector");
    }
    Ok(())
}

/// autoscaling/v2beta1 metrics (`targetAverageUtilization`, `metricName`, ...) become
/// autoscaling/v2's `metric` and `target`.
fn hpa_v2beta1_to_v2(o: &mut Value) -> Result<(), String> {
    let Some(metrics) = o.pointer_mut("/spec/metrics").and_then(Value::as_array_mut) else { return Ok(()) };
    for m in metrics {
        let Some(kind) = m["type"].as_str().map(str::to_owned) else { continue };
        let field = match kind.as_str() {
            "Resource" => "resource",
            "Pods" => "pods",
            "Object" => "object",
            "External" => "external",
            "ContainerResource" => "containerResource",
            _ => continue,
        };
        let Some(old) = m.get_mut(field).and_then(Value::as_object_mut) else { continue };
        let mut target = Map::new();
        if let Some(u) = old.remove("targetAverageUtilization") {
            target.insert("type".into(), json!("Utilization"));
            target.insert("averageUtilization".into(), u);
        } else if let Some(v) = old.remove("targetAverageValue") {
            target.insert("type".into(), json!("AverageValue"));
            target.insert("averageValue".into(), v);
        } else if let Some(v) = old.remove("targetValue") {
            target.insert("type".into(), json!("Value"));
            target.insert("value".into(), v);
        }
        let mut metric = Map::new();
        if let Some(n) = old.remove("metricName") {
            metric.insert("name".into(), n);
        }
        if let Some(s) = old.remove("metricSelector").or_else(|| old.remove("selector")) {
            metric.insert("selector".into(), s);
        }
        if !metric.is_empty() {
            old.insert("metric".into(), Value::Object(metric));
        }
        if let Some(t) = old.remove("target") {
            // Object metrics named the object they describe `target`: v2 calls it `describedObject`.
            old.insert("describedObject".into(), t);
        }
        old.insert("target".into(), Value::Object(target));
    }
    Ok(())
}

/// apiextensions.k8s.io/v1beta1 CRDs: the top-level `version`, `validation`, `subresources`
/// and `additionalPrinterColumns` move into each version; a CRD without a schema keeps
/// accepting anything (`x-kubernetes-preserve-unknown-fields`).
fn crd_v1(o: &mut Value) -> Result<(), String> {
    let spec = spec(o);
    let schema = spec.remove("validation");
    let subresources = spec.remove("subresources");
    let columns = spec.remove("additionalPrinterColumns").map(|c| {
        let mut c = c;
        for col in c.as_array_mut().into_iter().flatten() {
            if let Some(p) = col.as_object_mut().and_then(|m| m.remove("JSONPath")) {
                col["jsonPath"] = p;
            }
        }
        c
    });
    let single = spec.remove("version");
    let mut versions = spec.remove("versions").and_then(|v| v.as_array().cloned()).unwrap_or_default();
    if versions.is_empty() {
        let name = single.ok_or("it names no version")?;
        versions.push(json!({"name": name, "served": true, "storage": true}));
    }
    for v in &mut versions {
        if v.get("schema").is_none() {
            v["schema"] = schema.clone().unwrap_or_else(|| json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}));
        }
        if let (None, Some(s)) = (v.get("subresources"), &subresources) {
            v["subresources"] = s.clone();
        }
        if let (None, Some(c)) = (v.get("additionalPrinterColumns"), &columns) {
            v["additionalPrinterColumns"] = c.clone();
        }
    }
    spec.insert("versions".into(), Value::Array(versions));
    if spec.get("preserveUnknownFields") == Some(&json!(true)) {
        spec.insert("preserveUnknownFields".into(), json!(false));
    }
    Ok(())
}

/// flowcontrol v1beta1/2's `assuredConcurrencyShares` is v1's `nominalConcurrencyShares`.
fn priority_level_v1(o: &mut Value) -> Result<(), String> {
    if let Some(limited) = o.pointer_mut("/spec/limited").and_then(Value::as_object_mut) {
        if let Some(shares) = limited.remove("assuredConcurrencyShares") {
            limited.insert("nominalConcurrencyShares".into(), shares);
        }
    }
    Ok(())
}

/// The group/resource a point's resource is written as on a newer cluster, for the restore
/// Job's grant (`rbac.resources`): moved resources name their new group.
pub fn successor_resource(group: &str, resource: &str) -> Option<(&'static str, &'static str)> {
    Some(match (group, resource) {
        ("extensions", "ingresses") => ("networking.k8s.io", "ingresses"),
        ("extensions", "networkpolicies") => ("networking.k8s.io", "networkpolicies"),
        ("extensions", "deployments") => ("apps", "deployments"),
        ("extensions", "daemonsets") => ("apps", "daemonsets"),
        ("extensions", "replicasets") => ("apps", "replicasets"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1.36 cluster: the betas are gone.
    fn served_136(group: &str, kind: &str) -> Vec<String> {
        let v: &[&str] = match (group, kind) {
            ("networking.k8s.io", "Ingress" | "IngressClass" | "NetworkPolicy") => &["v1"],
            ("apps", _) | ("policy", "PodDisruptionBudget") | ("batch", "CronJob") | ("flowcontrol.apiserver.k8s.io", _) => &["v1"],
            ("autoscaling", "HorizontalPodAutoscaler") => &["v2", "v1"],
            ("apiextensions.k8s.io", _) => &["v1"],
            ("storage.k8s.io", "CSIStorageCapacity") => &["v1"],
            _ => &[],
        };
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn removed_versions_convert_to_what_the_target_serves() {
        #[rustfmt::skip]
        let table: Vec<(Value, Value)> = vec![
            (json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress", "spec": {"backend": {"serviceName": "web", "servicePort": 80},
                    "rules": [{"http": {"paths": [{"path": "/", "backend": {"serviceName": "api", "servicePort": "http"}}]}}]}}),
             json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
                    "rules": [{"http": {"paths": [{"path": "/", "pathType": "ImplementationSpecific", "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}}]}})),
            (json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget", "spec": {"minAvailable": 1, "selector": {}}}),
             json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "spec": {"minAvailable": 1}})),
            (json!({"apiVersion": "batch/v1beta1", "kind": "CronJob", "spec": {"schedule": "@daily"}}),
             json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"schedule": "@daily"}})),
            (json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "spec": {"rollbackTo": {"revision": 1}, "template": {"metadata": {"labels": {"app": "a"}}}}}),
             json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a"}}}}})),
            (json!({"apiVersion": "autoscaling/v2beta1", "kind": "HorizontalPodAutoscaler", "spec": {"metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "targetAverageUtilization": 80}},
                    {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}},
                    {"type": "Object", "object": {"metricName": "hits", "target": {"kind": "Service", "name": "s"}, "targetValue": "5"}}]}}),
             json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "spec": {"metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "Object", "object": {"metric": {"name": "hits"}, "describedObject": {"kind": "Service", "name": "s"}, "target": {"type": "Value", "value": "5"}}}]}})),
            (json!({"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "CustomResourceDefinition", "spec": {"group": "x.io", "version": "v1", "scope": "Namespaced",
                    "subresources": {"status": {}}, "additionalPrinterColumns": [{"name": "Age", "type": "date", "JSONPath": ".metadata.creationTimestamp"}]}}),
             json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "spec": {"group": "x.io", "scope": "Namespaced",
                    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                                  "subresources": {"status": {}}, "additionalPrinterColumns": [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}]}})),
            (json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta2", "kind": "PriorityLevelConfiguration", "spec": {"type": "Limited", "limited": {"assuredConcurrencyShares": 5}}}),
             json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration", "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 5}}})),
            (json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta2", "kind": "FlowSchema", "spec": {"matchingPrecedence": 500}}),
             json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "spec": {"matchingPrecedence": 500}})),
            // Not a built-in removal: the version the target prefers for the kind.
            (json!({"apiVersion": "storage.k8s.io/v1beta1", "kind": "CSIStorageCapacity", "storageClassName": "x"}),
             json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity", "storageClassName": "x"})),
        ];
        for (mut from, want) in table {
            let to = want["apiVersion"].as_str().unwrap().to_owned();
            assert_eq!(convert(&mut from, &served_136), Some(Converted::To(to)));
            assert_eq!(from, want);
        }
    }

    #[test]
    fn served_objects_stay_and_the_rest_say_why() {
        let mut ok = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert_eq!(convert(&mut ok, &served_136), None);
        let mut psp = json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy"});
        assert!(matches!(convert(&mut psp, &served_136), Some(Converted::Unservable(why)) if why.contains("Pod Security Admission")));
        let mut no_selector = json!({"apiVersion": "apps/v1beta2", "kind": "Deployment", "spec": {}});
        assert!(matches!(convert(&mut no_selector, &served_136), Some(Converted::Unservable(_))));
        // A kind the target does not serve in any version: left for the apply to report (or
        // for the point's own CRD to define).
        let mut widget = json!({"apiVersion": "x.io/v1", "kind": "Widget"});
        assert_eq!(convert(&mut widget, &served_136), None);
        assert_eq!(widget["apiVersion"], "x.io/v1");
    }

    #[test]
    fn what_the_target_manages_itself_is_left_to_it() {
        let auto = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.batch", "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}}});
        assert!(managed_by_target(&auto).is_some());
        let metrics = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.metrics.k8s.io"}});
        assert!(managed_by_target(&metrics).is_none());
        let apf = json!({"apiVersion": "flowcontrol.apiserver.k8s.io/v1beta2", "kind": "FlowSchema", "metadata": {"name": "exempt", "annotations": {"apf.kubernetes.io/autoupdate-spec": "true"}}});
        assert!(managed_by_target(&apf).is_some());
        let bootstrap = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}});
        assert!(managed_by_target(&bootstrap).is_some());
        let mine = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "shop-reader"}});
        assert!(managed_by_target(&mine).is_none());
        let ip = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress", "metadata": {"name": "10.96.4.7"}});
        assert!(managed_by_target(&ip).is_some());
    }
}
