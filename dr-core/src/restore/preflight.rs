//! The preflight: what would stop or block the restore, found against the target before the
//! first write (`kubectl dr restore --preflight`, and every `--dry-run`). One finding per
//! problem, with the objects it touches:
//! - `api`: kinds of the point the target does not serve (and no conversion or CRD of the
//!   point makes servable);
//! - `class`: StorageClass, IngressClass, PriorityClass and RuntimeClass names that will not
//!   exist (neither on the target nor in the point);
//! - `collision`: objects the target already has (added after the dry-run's apply);
//! - `webhook`: admission webhooks whose failure policy is Fail and whose service has no
//!   ready endpoints: the target's would refuse the restore's writes; the point's, restored
//!   last, refuse writes until their service is running;
//! - `quota`: ResourceQuotas whose object counts the point would exceed.
//!
//! Every real restore runs the webhook check too, as warnings in its report. A check the
//! restore's credentials may not read (the Job's grant names the point's kinds) is skipped.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kube::Client;
use serde_json::Value;

use super::plan::{Plan, Sample};
use super::report::{Finding, RestoreReport};
use crate::discovery::ServedApis;

/// Runs the checks: all of them, or only the webhooks (`all` false).
/// `served` is what the target serves, as the plan read it.
pub async fn check(client: &Client, plan: &Plan, served: &ServedApis, all: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    if all {
        apis(plan, served, &mut findings);
        classes(client, plan, &mut findings).await;
        quotas(client, plan, &mut findings).await;
    }
    webhooks(client, plan, &mut findings).await;
    findings
}

fn finding(check: &str, message: String, objects: &Sample) -> Finding {
    let mut objects_named = objects.names.clone();
    if objects.count > objects.names.len() as u64 {
        objects_named.push(format!("and {} more", objects.count - objects.names.len() as u64));
    }
    Finding { check: check.into(), message, objects: objects_named }
}

fn apis(plan: &Plan, served: &ServedApis, findings: &mut Vec<Finding>) {
    for ((api_version, kind), objects) in &plan.uses.kinds {
        if served.serves(api_version, kind) || plan.planned_kind(api_version, kind).is_some_and(|k| k.is_ok()) {
            continue;
        }
        let why = match plan.planned_kind(api_version, kind) {
            Some(Err(why)) => why,
            _ => {
                format!("{api_version} {kind} is not served by this cluster (install its CRD or API service first, or leave the kind out with --exclude-kinds)")
            }
        };
        findings.push(finding("api", format!("{why}: {} objects cannot be restored", objects.count), objects));
    }
    for (kind, failures) in &plan.unservable {
        findings.push(finding(
            "api",
            format!("{} {kind} objects are in an API version this cluster no longer serves and cannot be converted", failures.count),
            failures,
        ));
    }
}

fn class_resource(class: &str) -> ApiResource {
    let (group, version, plural) = match class {
        "StorageClass" => ("storage.k8s.io", "v1", "storageclasses"),
        "IngressClass" => ("networking.k8s.io", "v1", "ingressclasses"),
        "PriorityClass" => ("scheduling.k8s.io", "v1", "priorityclasses"),
        _ => ("node.k8s.io", "v1", "runtimeclasses"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, class), plural)
}

async fn classes(client: &Client, plan: &Plan, findings: &mut Vec<Finding>) {
    for ((class, name), users) in &plan.uses.classes {
        if plan.uses.defined_classes.contains(&(*class, name.clone())) {
            continue;
        }
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &class_resource(class));
        match api.get_opt(name).await {
            Ok(Some(_)) => {}
            Ok(None) => findings.push(finding(
                "class",
                format!("{class} {name} is not on this cluster nor in the point: {} objects refer to it (create it, or map it: --storage-class-mapping {name}=NEW for storage classes)", users.count),
                users,
            )),
            Err(e) => tracing::warn!(class, name, error = %crate::error_text(&e), "preflight: cannot check the class"),
        }
    }
}

async fn quotas(client: &Client, plan: &Plan, findings: &mut Vec<Finding>) {
    let api: Api<ResourceQuota> = Api::all(client.clone());
    let quotas = match api.list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            tracing::warn!(error = %crate::error_text(&e), "preflight: cannot read ResourceQuotas");
            return;
        }
    };
    for q in quotas {
        let ns = q.metadata.namespace.clone().unwrap_or_default();
        let name = q.metadata.name.clone().unwrap_or_default();
        let hard = q.status.as_ref().and_then(|s| s.hard.clone()).or_else(|| q.spec.as_ref().and_then(|s| s.hard.clone())).unwrap_or_default();
        let used = q.status.as_ref().and_then(|s| s.used.clone()).unwrap_or_default();
        for (key, limit) in &hard {
            let resource = key.strip_prefix("count/").unwrap_or(key);
            if !key.starts_with("count/")
                && !["pods", "services", "secrets", "configmaps", "persistentvolumeclaims", "replicationcontrollers"].contains(&resource)
            {
                continue;
            }
            let Some(planned) = plan.uses.per_namespace.get(&(ns.clone(), resource.to_owned())) else { continue };
            let (Ok(limit), used) = (limit.0.parse::<u64>(), used.get(key).and_then(|u| u.0.parse::<u64>().ok()).unwrap_or(0)) else { continue };
            if used + planned > limit {
                findings.push(Finding {
                    check: "quota".into(),
                    message: format!("ResourceQuota {ns}/{name} allows {limit} {key} and {used} are used: the point's {planned} would exceed it (raise the quota, or leave objects out)"),
                    objects: vec![format!("{ns}: {planned} {resource}")],
                });
            }
        }
    }
}

fn webhook_resource(kind: &str) -> ApiResource {
    let plural = if kind.starts_with("Validating") { "validatingwebhookconfigurations" } else { "mutatingwebhookconfigurations" };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind), plural)
}

async fn webhooks(client: &Client, plan: &Plan, findings: &mut Vec<Finding>) {
    let mut configs: Vec<(bool, Value)> = plan.uses.webhooks.iter().map(|w| (true, w.clone())).collect();
    let point_names: Vec<(String, String)> = plan
        .uses
        .webhooks
        .iter()
        .map(|w| (w["kind"].as_str().unwrap_or_default().to_owned(), w["metadata"]["name"].as_str().unwrap_or_default().to_owned()))
        .collect();
    for kind in ["ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &webhook_resource(kind));
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                for mut o in list.items.into_iter().filter_map(|o| serde_json::to_value(o).ok()) {
                    o["kind"] = Value::String(kind.into());
                    let name = o["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    if !point_names.contains(&(kind.to_owned(), name)) {
                        configs.push((false, o));
                    }
                }
            }
            Err(e) => tracing::debug!(kind, error = %crate::error_text(&e), "preflight: cannot list the target's webhooks"),
        }
    }
    let mut ready_cache: BTreeMap<(String, String), Option<bool>> = BTreeMap::new();
    for (from_point, config) in configs {
        let config_name = format!("{} {}", config["kind"].as_str().unwrap_or_default(), config["metadata"]["name"].as_str().unwrap_or_default());
        for hook in config["webhooks"].as_array().into_iter().flatten() {
            // v1's default failure policy is Fail.
            if hook["failurePolicy"].as_str().unwrap_or("Fail") != "Fail" {
                continue;
            }
            let (Some(ns), Some(svc)) =
                (hook.pointer("/clientConfig/service/namespace").and_then(Value::as_str), hook.pointer("/clientConfig/service/name").and_then(Value::as_str))
            else {
                continue;
            };
            let key = (ns.to_owned(), svc.to_owned());
            if !ready_cache.contains_key(&key) {
                let ready = has_ready_endpoints(client, ns, svc).await;
                ready_cache.insert(key.clone(), ready);
            }
            if ready_cache[&key] != Some(false) {
                continue;
            }
            let blocked = blocked_objects(hook, plan, from_point);
            if blocked.count == 0 {
                continue;
            }
            let hook_name = hook["name"].as_str().unwrap_or_default();
            let message = if from_point {
                format!(
                    "webhook {hook_name} of {config_name} (failurePolicy Fail) calls service {ns}/{svc}, which has no ready endpoints here: it is restored last, and until its service runs it refuses writes of {} objects like these",
                    blocked.count
                )
            } else {
                format!(
                    "webhook {hook_name} of {config_name} on this cluster (failurePolicy Fail) calls service {ns}/{svc}, which has no ready endpoints: it would refuse {} objects of the point (start its service, or set its failurePolicy to Ignore for the restore)",
                    blocked.count
                )
            };
            findings.push(finding("webhook", message, &blocked));
        }
    }
}

/// `Some(false)` when the service has no ready endpoint; `None` when that cannot be read.
async fn has_ready_endpoints(client: &Client, namespace: &str, service: &str) -> Option<bool> {
    let slices: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("discovery.k8s.io", "v1", "EndpointSlice"), "endpointslices"),
    );
    let list = slices.list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}"))).await;
    match list {
        Ok(list) => Some(list.items.iter().any(|s| {
            s.data["endpoints"].as_array().is_some_and(|eps| eps.iter().any(|e| e.pointer("/conditions/ready").and_then(Value::as_bool).unwrap_or(true)))
        })),
        Err(e) => {
            tracing::debug!(namespace, service, error = %crate::error_text(&e), "preflight: cannot read the service's endpoints");
            None
        }
    }
}

/// The point's objects a webhook's rules match: creates for the target's webhooks (the
/// restore creates), any operation for the point's own.
fn blocked_objects(hook: &Value, plan: &Plan, any_operation: bool) -> Sample {
    let mut sample = Sample::default();
    let rules = hook["rules"].as_array().cloned().unwrap_or_default();
    let listed = |list: &Value, item: &str| list.as_array().is_some_and(|l| l.iter().any(|v| v == "*" || v == item || v == "*/*"));
    for ((group, plural, namespaced), objects) in &plan.uses.resources {
        let matches = rules.iter().any(|r| {
            let op = any_operation || listed(&r["operations"], "CREATE");
            let scope_ok = match r["scope"].as_str().unwrap_or("*") {
                "Namespaced" => *namespaced,
                "Cluster" => !*namespaced,
                _ => true,
            };
            op && scope_ok && listed(&r["apiGroups"], group) && listed(&r["resources"], plural)
        });
        if matches {
            sample.count += objects.count;
            for name in &objects.names {
                if sample.names.len() < Sample::KEPT {
                    sample.names.push(name.clone());
                }
            }
        }
    }
    sample
}

/// The objects a dry-run found already on the target and different from the point, as
/// findings (one per kind). One that equals the point is no collision: nothing would change.
pub fn collisions(report: &RestoreReport) -> Vec<Finding> {
    report
        .by_kind
        .iter()
        .filter_map(|(kind, k)| {
            let existing = k.skipped.get("already exists").copied().unwrap_or(0);
            let differ = existing.saturating_sub(k.unchanged);
            (differ > 0).then(|| Finding {
                check: "collision".into(),
                message: format!(
                    "{differ} {kind} objects already exist on this cluster and differ from the point: they are left as they are unless --existing update"
                ),
                objects: k.differs.iter().take(Sample::KEPT).cloned().collect(),
            })
        })
        .collect()
}
