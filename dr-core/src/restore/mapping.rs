//! Restoring under other names and onto other infrastructure (`mapping.*` chart values,
//! `--namespace-mapping`, `--storage-class-mapping`, `--image-registry-mapping`). Pure
//! rewrites of one object, applied in the plan, so what the apply writes is what the plan
//! checked.
//!
//! A namespace moves with every reference to it the product can know: the object's own
//! namespace, a Namespace's name, RoleBinding/ClusterRoleBinding subjects (ServiceAccounts,
//! and the `system:serviceaccount(s):NS` user and group names), a PersistentVolume's
//! `claimRef`, the service a webhook, a CRD conversion webhook or an APIService calls, and
//! `<service>.<namespace>.svc[.cluster.local]` host names in every string of the kinds the
//! user names (`hostNameKinds`: host names can be anywhere, so only where asked).

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::patterns::{KIND, LABEL, NAME, REGISTRY};
use super::select::{is_dns_label, names_kind};

/// The chart's `mapping` values. (The field comments are the chart's documentation:
/// `restore::chart` generates values.yaml and its schema from them.)
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Mapping {
    /// source: target. Every reference the product knows moves too (binding subjects, PV
    /// claimRefs, webhook and APIService services); see hostNameKinds for host names.
    #[schemars(extend("propertyNames" = {"pattern": LABEL}, "additionalProperties" = {"type": "string", "pattern": LABEL}))]
    pub namespaces: BTreeMap<String, String>,
    /// source: target, for PVCs, StatefulSet claim templates and PVs.
    #[schemars(extend("propertyNames" = {"pattern": NAME}, "additionalProperties" = {"type": "string", "pattern": NAME}))]
    pub storage_classes: BTreeMap<String, String>,
    /// source registry (or registry/path): target, in every pod template's images.
    #[schemars(extend("propertyNames" = {"pattern": REGISTRY}, "additionalProperties" = {"type": "string", "pattern": REGISTRY}))]
    pub image_registries: BTreeMap<String, String>,
    /// Kinds in whose strings <service>.<namespace>.svc[.cluster.local] host names follow the
    /// namespace mapping (ConfigMap, Deployment.apps, ...).
    #[schemars(inner(pattern(KIND)))]
    pub host_name_kinds: Vec<String>,
}

/// `old=new,old2=new2`, as the flags take it.
pub fn parse_pairs(flag: &str, list: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((old, new)) = pair.split_once('=') else {
            return Err(format!("{flag}: {pair:?} is not old=new"));
        };
        if old.trim().is_empty() || new.trim().is_empty() || new.contains('=') {
            return Err(format!("{flag}: {pair:?} is not old=new"));
        }
        if out.insert(old.trim().to_owned(), new.trim().to_owned()).is_some() {
            return Err(format!("{flag}: {old:?} is mapped twice"));
        }
    }
    Ok(out)
}

impl Mapping {
    pub fn is_empty(&self) -> bool {
        *self == Mapping::default()
    }

    /// Checks the mapping; `dr_namespace` (where the DR platform is restored) cannot move.
    pub fn compile(&self, dr_namespace: &str) -> Result<CompiledMapping, String> {
        let mut targets = BTreeSet::new();
        for (old, new) in &self.namespaces {
            for n in [old, new] {
                if !is_dns_label(n) {
                    return Err(format!("namespace mapping {old}={new}: {n:?} is not a namespace name"));
                }
            }
            if old == new {
                return Err(format!("namespace mapping {old}={new} maps a namespace onto itself"));
            }
            if old == dr_namespace || new == dr_namespace {
                return Err(format!("namespace mapping {old}={new}: the DR namespace {dr_namespace} holds the DR platform and cannot be mapped"));
            }
            if !targets.insert(new.clone()) {
                return Err(format!("namespace mapping: two namespaces map onto {new}; their objects would collide"));
            }
        }
        for (old, new) in &self.storage_classes {
            for n in [old, new] {
                if n.is_empty() || n.len() > 253 || !n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') {
                    return Err(format!("storage class mapping {old}={new}: {n:?} is not a StorageClass name"));
                }
            }
        }
        for (old, new) in &self.image_registries {
            for n in [old, new] {
                if n.is_empty() || n.ends_with('/') || n.chars().any(|c| c.is_whitespace() || c == '@') {
                    return Err(format!("image registry mapping {old}={new}: {n:?} is not a registry (host[:port][/path])"));
                }
            }
        }
        let host_names = if self.namespaces.is_empty() || self.host_name_kinds.is_empty() {
            None
        } else {
            let olds: Vec<String> = self.namespaces.keys().map(|n| regex::escape(n)).collect();
            // `svc.ns.svc` or `svc.ns.svc.cluster.local`, not inside a longer name.
            let pattern = format!(r"(?P<svc>\b[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.(?P<ns>{})\.svc(?P<tail>\.cluster\.local)?\b", olds.join("|"));
            Some(Regex::new(&pattern).map_err(|e| format!("namespace mapping: {e}"))?)
        };
        let host_name_kinds = self.host_name_kinds.iter().map(|k| k.trim().to_lowercase()).collect();
        Ok(CompiledMapping { mapping: self.clone(), host_names, host_name_kinds })
    }
}

#[derive(Clone, Debug, Default)]
pub struct CompiledMapping {
    mapping: Mapping,
    host_names: Option<Regex>,
    host_name_kinds: BTreeSet<String>,
}

impl CompiledMapping {
    fn ns(&self, old: &str) -> Option<&String> {
        self.mapping.namespaces.get(old)
    }

    /// The namespace an object of `namespace` is written in.
    pub fn namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.ns(namespace).map_or(namespace, String::as_str)
    }

    /// Rewrites `object` per the mapping. `plural` is its resource name when known.
    pub fn apply(&self, object: &mut Value, plural: Option<&str>) {
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        if !self.mapping.namespaces.is_empty() {
            self.move_namespace(object, group, &kind);
            if let Some(re) = &self.host_names {
                let key = crate::catalog::kind_key(&api_version, &kind);
                if names_kind(&self.host_name_kinds, &key, &kind, plural) {
                    self.rewrite_host_names(object, re);
                }
            }
        }
        if !self.mapping.storage_classes.is_empty() {
            self.map_storage_classes(object, group, &kind);
        }
        if !self.mapping.image_registries.is_empty() {
            for_each_pod_spec(object, &mut |spec| {
                for list in ["containers", "initContainers", "ephemeralContainers"] {
                    for c in spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
                        if let Some(image) = c["image"].as_str().and_then(|i| map_image(i, &self.mapping.image_registries)) {
                            c["image"] = Value::String(image);
                        }
                    }
                }
            });
        }
    }

    fn move_namespace(&self, object: &mut Value, group: &str, kind: &str) {
        let map_at = |v: &mut Value| {
            if let Some(new) = v.as_str().and_then(|old| self.ns(old)) {
                *v = Value::String(new.clone());
            }
        };
        if let Some(ns) = object.pointer_mut("/metadata/namespace") {
            map_at(ns);
        }
        match (group, kind) {
            ("", "Namespace") => {
                if let Some(name) = object.pointer_mut("/metadata/name") {
                    map_at(name);
                }
                // The API server keeps this label equal to the name; the point has the old one.
                let name = object["metadata"]["name"].clone();
                if let Some(label) = object.pointer_mut("/metadata/labels/kubernetes.io~1metadata.name") {
                    *label = name;
                }
            }
            ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
                for s in object.get_mut("subjects").and_then(Value::as_array_mut).into_iter().flatten() {
                    match s["kind"].as_str() {
                        Some("ServiceAccount") => map_at(&mut s["namespace"]),
                        Some("User") => {
                            let name = s["name"].as_str().unwrap_or_default();
                            if let Some((ns, sa)) = name.strip_prefix("system:serviceaccount:").and_then(|r| r.split_once(':')) {
                                if let Some(new) = self.ns(ns) {
                                    s["name"] = Value::String(format!("system:serviceaccount:{new}:{sa}"));
                                }
                            }
                        }
                        Some("Group") => {
                            if let Some(new) = s["name"].as_str().and_then(|n| n.strip_prefix("system:serviceaccounts:")).and_then(|ns| self.ns(ns)) {
                                s["name"] = Value::String(format!("system:serviceaccounts:{new}"));
                            }
                        }
                        _ => {}
                    }
                }
            }
            ("", "PersistentVolume") => {
                if let Some(ns) = object.pointer_mut("/spec/claimRef/namespace") {
                    map_at(ns);
                }
            }
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") => {
                for w in object.get_mut("webhooks").and_then(Value::as_array_mut).into_iter().flatten() {
                    if let Some(ns) = w.pointer_mut("/clientConfig/service/namespace") {
                        map_at(ns);
                    }
                }
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                if let Some(ns) = object.pointer_mut("/spec/conversion/webhook/clientConfig/service/namespace") {
                    map_at(ns);
                }
            }
            ("apiregistration.k8s.io", "APIService") => {
                if let Some(ns) = object.pointer_mut("/spec/service/namespace") {
                    map_at(ns);
                }
            }
            _ => {}
        }
    }

    fn rewrite_host_names(&self, object: &mut Value, re: &Regex) {
        fn walk(v: &mut Value, re: &Regex, map: &BTreeMap<String, String>, top: bool) {
            match v {
                Value::String(s) if re.is_match(s) => {
                    *s = re
                        .replace_all(s, |c: &regex::Captures| format!("{}.{}.svc{}", &c["svc"], map[&c["ns"]], c.name("tail").map_or("", |t| t.as_str())))
                        .into_owned();
                }
                Value::Array(items) => items.iter_mut().for_each(|i| walk(i, re, map, false)),
                Value::Object(fields) => {
                    for (k, field) in fields.iter_mut() {
                        // The object's identity is the namespace mapping's, not a host name.
                        if !(top && (k == "apiVersion" || k == "kind")) {
                            walk(field, re, map, false);
                        }
                    }
                }
                _ => {}
            }
        }
        walk(object, re, &self.mapping.namespaces, true);
    }

    fn map_storage_classes(&self, object: &mut Value, group: &str, kind: &str) {
        let classes = &self.mapping.storage_classes;
        let map_at = |v: Option<&mut Value>| {
            if let Some(v) = v {
                if let Some(new) = v.as_str().and_then(|c| classes.get(c)) {
                    *v = Value::String(new.clone());
                }
            }
        };
        match (group, kind) {
            ("", "PersistentVolumeClaim") => {
                map_at(object.pointer_mut("/spec/storageClassName"));
                map_at(object.pointer_mut("/metadata/annotations/volume.beta.kubernetes.io~1storage-class"));
            }
            ("", "PersistentVolume") => map_at(object.pointer_mut("/spec/storageClassName")),
            ("apps", "StatefulSet") => {
                for t in object.pointer_mut("/spec/volumeClaimTemplates").and_then(Value::as_array_mut).into_iter().flatten() {
                    map_at(t.pointer_mut("/spec/storageClassName"));
                }
            }
            _ => {}
        }
    }
}

/// Calls `f` on every pod spec in `object`: a Pod's spec, and every pod template (workloads,
/// Jobs, CronJobs' job templates, and custom resources that embed one): any object holding a
/// `containers` list.
pub(crate) fn for_each_pod_spec(object: &mut Value, f: &mut dyn FnMut(&mut serde_json::Map<String, Value>)) {
    match object {
        Value::Object(fields) => {
            if fields.get("containers").is_some_and(Value::is_array) {
                f(fields);
                return;
            }
            for (k, v) in fields.iter_mut() {
                if k != "metadata" && k != "status" {
                    for_each_pod_spec(v, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| for_each_pod_spec(i, f)),
        _ => {}
    }
}

/// `image` with its registry (or registry/path prefix) mapped; `None` when no mapping applies.
/// Images without a registry are Docker Hub's (`nginx` is `docker.io/library/nginx`), so a
/// `docker.io=...` mapping moves them too.
pub fn map_image(image: &str, registries: &BTreeMap<String, String>) -> Option<String> {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry = image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        image.to_owned()
    } else if image.contains('/') {
        format!("docker.io/{image}")
    } else {
        format!("docker.io/library/{image}")
    };
    // The longest prefix wins (registry/team before registry).
    let (old, new) =
        registries.iter().filter(|(old, _)| full.strip_prefix(old.as_str()).is_some_and(|rest| rest.starts_with('/'))).max_by_key(|(old, _)| old.len())?;
    Some(format!("{new}{}", &full[old.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(ns: &[(&str, &str)]) -> Mapping {
        Mapping { namespaces: ns.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(), ..Default::default() }
    }

    #[test]
    fn a_namespace_moves_with_every_reference_to_it() {
        let m = Mapping { host_name_kinds: vec!["ConfigMap".into()], ..mapping(&[("shop", "shop-dr")]) }.compile("kasten-io").unwrap();
        let mut rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "subjects": [
            {"kind": "ServiceAccount", "name": "web", "namespace": "shop"}, {"kind": "ServiceAccount", "name": "x", "namespace": "other"},
            {"kind": "User", "name": "system:serviceaccount:shop:web"}, {"kind": "Group", "name": "system:serviceaccounts:shop"}]});
        m.apply(&mut rb, None);
        assert_eq!(
            rb["subjects"],
            json!([{"kind": "ServiceAccount", "name": "web", "namespace": "shop-dr"}, {"kind": "ServiceAccount", "name": "x", "namespace": "other"},
            {"kind": "User", "name": "system:serviceaccount:shop-dr:web"}, {"kind": "Group", "name": "system:serviceaccounts:shop-dr"}])
        );
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop"}}});
        m.apply(&mut ns, None);
        assert_eq!(ns["metadata"]["name"], "shop-dr");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "shop-dr");
        let mut pv =
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv"}, "spec": {"claimRef": {"namespace": "shop", "name": "data"}}});
        m.apply(&mut pv, None);
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "shop-dr");
        let mut hook = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "h"},
            "webhooks": [{"name": "a", "clientConfig": {"service": {"namespace": "shop", "name": "hook"}}}]});
        m.apply(&mut hook, None);
        assert_eq!(hook["webhooks"][0]["clientConfig"]["service"]["namespace"], "shop-dr");
        let mut api = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1.x"}, "spec": {"service": {"namespace": "shop", "name": "api"}}});
        m.apply(&mut api, None);
        assert_eq!(api["spec"]["service"]["namespace"], "shop-dr");
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"},
            "data": {"url": "http://db.shop.svc.cluster.local:5432/x", "b": "cache.shop.svc:6379 and db.shopping.svc", "c": "api.shop.svcx"}});
        m.apply(&mut cm, Some("configmaps"));
        assert_eq!(cm["metadata"]["namespace"], "shop-dr");
        assert_eq!(
            cm["data"],
            json!({"url": "http://db.shop-dr.svc.cluster.local:5432/x", "b": "cache.shop-dr.svc:6379 and db.shopping.svc", "c": "api.shop.svcx"})
        );
        // Host names are rewritten only in the kinds named.
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}, "stringData": {"url": "db.shop.svc"}});
        m.apply(&mut secret, Some("secrets"));
        assert_eq!(secret["stringData"]["url"], "db.shop.svc");
    }

    #[test]
    fn bad_mappings_are_refused() {
        assert!(mapping(&[("shop", "shop")]).compile("kasten-io").is_err());
        assert!(mapping(&[("kasten-io", "x")]).compile("kasten-io").unwrap_err().contains("DR namespace"));
        assert!(mapping(&[("a", "x"), ("b", "x")]).compile("kasten-io").unwrap_err().contains("collide"));
        assert!(mapping(&[("Shop", "x")]).compile("kasten-io").is_err());
        assert!(parse_pairs("--namespace-mapping", "a=b,c").is_err());
        assert!(parse_pairs("--namespace-mapping", "a=b=c").is_err());
        assert!(parse_pairs("--namespace-mapping", "a=b,a=c").is_err());
        assert_eq!(parse_pairs("--namespace-mapping", "a=b, c=d").unwrap().len(), 2);
        let bad_registry = Mapping { image_registries: [("quay.io".to_string(), "mirror/ ".to_string())].into(), ..Default::default() };
        assert!(bad_registry.compile("kasten-io").is_err());
    }

    #[test]
    fn storage_classes_and_registries_are_mapped_in_every_template() {
        let m = Mapping {
            storage_classes: [("gp2".to_string(), "standard".to_string())].into(),
            image_registries: [("docker.io".to_string(), "mirror.local/hub".to_string()), ("quay.io/team".to_string(), "mirror.local/team".to_string())].into(),
            ..Default::default()
        }
        .compile("kasten-io")
        .unwrap();
        let mut sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"}, "spec": {
            "volumeClaimTemplates": [{"spec": {"storageClassName": "gp2"}}, {"spec": {"storageClassName": "fast"}}],
            "template": {"spec": {"initContainers": [{"name": "i", "image": "busybox"}], "containers": [{"name": "db", "image": "quay.io/team/db:1"}, {"name": "x", "image": "quay.io/other/x"}]}}}});
        m.apply(&mut sts, None);
        assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "standard");
        assert_eq!(sts["spec"]["volumeClaimTemplates"][1]["spec"]["storageClassName"], "fast");
        assert_eq!(sts["spec"]["template"]["spec"]["initContainers"][0]["image"], "mirror.local/hub/library/busybox");
        assert_eq!(sts["spec"]["template"]["spec"]["containers"][0]["image"], "mirror.local/team/db:1");
        assert_eq!(sts["spec"]["template"]["spec"]["containers"][1]["image"], "quay.io/other/x");
        let mut cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "bitnami/kubectl@sha256:ab"}]}}}}}});
        m.apply(&mut cron, None);
        assert_eq!(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"], "mirror.local/hub/bitnami/kubectl@sha256:ab");
        let mut pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "gp2"}}, "spec": {"storageClassName": "gp2"}});
        m.apply(&mut pvc, None);
        assert_eq!(pvc["spec"]["storageClassName"], "standard");
        assert_eq!(pvc["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"], "standard");
        assert_eq!(map_image("localhost:5000/app", &[("localhost:5000".to_string(), "r.io".to_string())].into()).unwrap(), "r.io/app");
        assert_eq!(map_image("quay.io/teams/x", &[("quay.io/team".to_string(), "m".to_string())].into()), None);
    }
}
