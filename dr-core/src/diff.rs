//! What changed between two restore points, or between a point and the live cluster
//! (`kubectl dr diff`): objects added, removed and changed, with field-level differences.
//! The answer to "what did the attacker change since the last good point".
//!
//! Both sides are normalized the same way before comparing: the fields the API server sets
//! (uid, resourceVersion, managedFields, ...), status (unless asked for) and the restore's
//! own annotation are dropped; Secret values (`data`, `stringData`) are replaced by a keyed
//! hash (HMAC-SHA-256 under a key made for this one comparison), so equal values compare
//! equal and a changed value shows as changed, but no value, and no hash a dictionary could
//! be run against, is ever printed.

use std::collections::BTreeMap;

use aws_lc_rs::hmac;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::{kind_key, Entry};

/// (kind key, namespace, name).
pub type ObjectKey = (String, String, String);

/// One side of a comparison.
pub type Snapshot = BTreeMap<ObjectKey, Value>;

/// Turns objects into comparable snapshots.
pub struct Normalizer {
    secret_key: hmac::Key,
    status: bool,
}

impl Normalizer {
    /// `status`: compare status too (it changes all the time on a live cluster).
    pub fn new(status: bool) -> Self {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        crate::format::crypto::fill_random(key.as_mut());
        Normalizer { secret_key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()), status }
    }

    fn hide(&self, bytes: &[u8]) -> Value {
        let tag = hmac::sign(&self.secret_key, bytes);
        Value::String(format!("hmac:{}", hex::encode(&tag.as_ref()[..8])))
    }

    pub fn key(object: &Value) -> ObjectKey {
        let s = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
        (kind_key(&s("/apiVersion"), &s("/kind")), s("/metadata/namespace"), s("/metadata/name"))
    }

    /// The object as it is compared.
    pub fn normalize(&self, mut object: Value) -> Value {
        crate::manifests::strip_server_fields(&mut object);
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove(crate::restore::RESTORED_FROM_ANNOTATION);
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
        if !self.status {
            if let Some(o) = object.as_object_mut() {
                o.remove("status");
            }
        }
        // Any kind spelled Secret, whatever its apiVersion: hiding too much costs nothing.
        if object["kind"].as_str().is_some_and(|k| k.eq_ignore_ascii_case("Secret")) {
            self.hide_secret_values(&mut object);
        }
        object
    }

    /// Replaces every value of a Secret's `data` and `stringData` by its keyed hash, whatever
    /// their shape: a map's values one by one (so a changed key shows as that key), anything
    /// else (a string, a list, a number: a malformed Secret, which a point made from manifests
    /// may hold) as one value. Nothing under either field is ever left as it was.
    fn hide_secret_values(&self, object: &mut Value) {
        use base64::Engine;
        for (field, base64_values) in [("data", true), ("stringData", false)] {
            let Some(value) = object.get_mut(field) else { continue };
            match value {
                Value::Null => {}
                Value::Object(map) => {
                    for v in map.values_mut() {
                        let hidden = match &*v {
                            // `data` holds base64: equal bytes compare equal however encoded.
                            Value::String(s) if base64_values => match base64::engine::general_purpose::STANDARD.decode(s.as_bytes()) {
                                Ok(raw) => self.hide(&zeroize::Zeroizing::new(raw)),
                                Err(_) => self.hide(s.as_bytes()),
                            },
                            Value::String(s) => self.hide(s.as_bytes()),
                            other => self.hide(zeroize::Zeroizing::new(other.to_string()).as_bytes()),
                        };
                        *v = hidden;
                    }
                }
                other => *other = self.hide(zeroize::Zeroizing::new(other.to_string()).as_bytes()),
            }
        }
    }

    pub fn add(&self, snapshot: &mut Snapshot, object: Value) {
        let object = self.normalize(object);
        snapshot.insert(Self::key(&object), object);
    }
}

/// One field that differs: its path and the two values (`None`: absent on that side).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FieldChange {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ChangedObject {
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    pub fields: Vec<FieldChange>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

/// The differences from `before` to `after`.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Diff {
    pub before: String,
    pub after: String,
    pub added: Vec<ObjectRef>,
    pub removed: Vec<ObjectRef>,
    pub changed: Vec<ChangedObject>,
    pub unchanged: u64,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

fn object_ref((kind, namespace, name): &ObjectKey) -> ObjectRef {
    ObjectRef { kind: kind.clone(), namespace: namespace.clone(), name: name.clone() }
}

/// Compares two snapshots.
pub fn compare(before_name: &str, before: &Snapshot, after_name: &str, after: &Snapshot) -> Diff {
    let mut diff = Diff { before: before_name.into(), after: after_name.into(), ..Default::default() };
    for (key, old) in before {
        match after.get(key) {
            None => diff.removed.push(object_ref(key)),
            Some(new) if new == old => diff.unchanged += 1,
            Some(new) => {
                let mut fields = Vec::new();
                field_changes(old, new, &mut String::new(), &mut fields);
                diff.changed.push(ChangedObject { kind: key.0.clone(), namespace: key.1.clone(), name: key.2.clone(), fields });
            }
        }
    }
    diff.added = after.keys().filter(|k| !before.contains_key(*k)).map(object_ref).collect();
    diff
}

/// The paths (JSON pointers) where `a` and `b` differ; objects are walked field by field,
/// lists item by item when their lengths match, else compared whole.
fn field_changes(a: &Value, b: &Value, path: &mut String, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => field_changes(v, w, path, out),
                    (v, w) => out.push(FieldChange { path: path.clone(), before: v.cloned(), after: w.cloned() }),
                }
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                field_changes(v, w, path, out);
                path.truncate(len);
            }
        }
        (v, w) if v == w => {}
        (v, w) => out.push(FieldChange { path: if path.is_empty() { "/".into() } else { path.clone() }, before: Some(v.clone()), after: Some(w.clone()) }),
    }
}

/// A point's objects as a snapshot.
pub fn point_snapshot(entries: Vec<Entry>, normalizer: &Normalizer) -> Snapshot {
    let mut s = Snapshot::new();
    for e in entries {
        normalizer.add(&mut s, e.object);
    }
    s
}

/// The live cluster's objects of the kinds `resources` names (kind key → plural), in the
/// namespaces `reads_namespace` accepts (cluster-scoped objects all), as a backup would read
/// them: objects a controller recreates (ReplicaSets and Pods of workloads) are left out.
pub async fn live_snapshot(
    client: &kube::Client,
    resources: &BTreeMap<String, String>,
    reads_namespace: &dyn Fn(&str) -> bool,
    normalizer: &Normalizer,
) -> Result<Snapshot, kube::Error> {
    let served = crate::discovery::ServedApis::discover(client).await?;
    let mut snapshot = Snapshot::new();
    for (key, plural) in resources {
        let (kind, group) = key.split_once('.').unwrap_or((key.as_str(), ""));
        let Some(version) = served.versions(group, kind).into_iter().next() else {
            tracing::warn!(kind = %key, "this cluster does not serve the kind: its objects in the point show as removed");
            continue;
        };
        let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, &version, kind), plural);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await?;
            for obj in page.items {
                let namespace = obj.metadata.namespace.clone().unwrap_or_default();
                if !namespace.is_empty() && !reads_namespace(&namespace) {
                    continue;
                }
                let mut object = serde_json::to_value(&obj).expect("objects serialize");
                object["apiVersion"] = Value::String(resource.api_version.clone());
                object["kind"] = Value::String(kind.to_owned());
                if crate::backup::recreated_by_controller(&object) {
                    continue;
                }
                normalizer.add(&mut snapshot, object);
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_added_removed_or_changed_field_by_field() {
        let n = Normalizer::new(false);
        let mut a = Snapshot::new();
        let mut b = Snapshot::new();
        n.add(&mut a, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop", "uid": "1", "resourceVersion": "5"}, "data": {"k": "v", "gone": "x"}}));
        n.add(&mut b, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop", "uid": "2", "resourceVersion": "9"}, "data": {"k": "w", "new": "y"}}));
        n.add(&mut a, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "shop"}}));
        n.add(&mut b, json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "miner", "namespace": "shop"}, "status": {"replicas": 1}}));
        n.add(&mut a, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}, "status": {"phase": "Active"}}));
        n.add(&mut b, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}, "status": {"phase": "Terminating"}}));
        let d = compare("a", &a, "b", &b);
        assert_eq!(d.unchanged, 1, "status is not compared unless asked");
        assert_eq!(d.removed, vec![ObjectRef { kind: "ConfigMap".into(), namespace: "shop".into(), name: "old".into() }]);
        assert_eq!(d.added, vec![ObjectRef { kind: "Deployment.apps".into(), namespace: "shop".into(), name: "miner".into() }]);
        assert_eq!(
            d.changed[0].fields,
            vec![
                FieldChange { path: "/data/gone".into(), before: Some(json!("x")), after: None },
                FieldChange { path: "/data/k".into(), before: Some(json!("v")), after: Some(json!("w")) },
                FieldChange { path: "/data/new".into(), before: None, after: Some(json!("y")) },
            ]
        );
    }

    #[test]
    fn secret_values_are_compared_by_keyed_hash_and_never_shown() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let n = Normalizer::new(false);
        let secret = |data: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, "data": data});
        let mut a = Snapshot::new();
        let mut b = Snapshot::new();
        n.add(&mut a, secret(json!({"password": b64("hunter2"), "user": b64("app")})));
        n.add(&mut b, secret(json!({"password": b64("stolen!"), "user": b64("app")})));
        let d = compare("a", &a, "b", &b);
        let text = serde_json::to_string(&d).unwrap();
        assert!(!text.contains("hunter2") && !text.contains(&b64("hunter2")) && !text.contains("stolen!"), "{text}");
        assert_eq!(d.changed[0].fields.len(), 1, "only the changed value differs: {text}");
        assert_eq!(d.changed[0].fields[0].path, "/data/password");
        assert!(d.changed[0].fields[0].before.as_ref().unwrap().as_str().unwrap().starts_with("hmac:"));
        // Another comparison uses another key: its hashes cannot be matched with these.
        let other = Normalizer::new(false).normalize(secret(json!({"password": b64("hunter2")})));
        assert_ne!(other["data"]["password"], a.values().next().unwrap()["data"]["password"]);
    }

    #[test]
    fn malformed_secret_values_are_hidden_whatever_their_shape() {
        let n = Normalizer::new(false);
        let secret = |field: &str, data: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, field: data});
        let shapes = [
            json!("hunter2-as-a-string"),
            json!(["hunter2-in-a-list", {"nested": "hunter2-nested"}]),
            json!(42424242),
            json!({"password": ["hunter2-list-value"], "token": {"deep": "hunter2-deep"}, "bad": "hunter2-not-base64!"}),
        ];
        for field in ["data", "stringData"] {
            for (i, before) in shapes.iter().enumerate() {
                let after = &shapes[(i + 1) % shapes.len()];
                let mut a = Snapshot::new();
                let mut b = Snapshot::new();
                n.add(&mut a, secret(field, before.clone()));
                n.add(&mut b, secret(field, after.clone()));
                let d = compare("a", &a, "b", &b);
                let text = serde_json::to_string(&d).unwrap();
                assert_eq!(d.changed.len(), 1, "a changed value shows as changed: {text}");
                assert!(!text.contains("hunter2") && !text.contains("42424242"), "{field}: {text}");
                // Equal malformed values still compare equal.
                let same = compare("a", &a, "a", &a);
                assert!(same.is_empty(), "{same:?}");
            }
        }
        // Two different values that are not base64 or not strings do not compare equal.
        let x = n.normalize(secret("data", json!({"k": "not base64!"})));
        let y = n.normalize(secret("data", json!({"k": "other not base64!"})));
        assert_ne!(x, y);
    }
}
