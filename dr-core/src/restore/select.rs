//! Choosing what comes back (`select.*` chart values, `kubectl dr restore --include-namespaces
//! ... --object ...`). Every rule matches the object as the point holds it (its source
//! namespace and name), before any mapping. Pure: the plan asks `left_out` for each object
//! and reports the reason, per kind.
//!
//! Namespaces come back with the objects in them: a Namespace object follows only the
//! namespace rules, `--object` (the namespace of a named object is kept) and an explicit
//! `--exclude-kinds Namespace`; kind and label rules never strand an object without its
//! namespace. Cluster-scoped objects other than Namespaces are not namespace-filtered.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::patterns::{KIND, LABEL, OBJECT, SELECTOR};
use crate::catalog::Entry;

/// The chart's `select` values, as they are given. (The field comments are the chart's
/// documentation: `restore::chart` generates values.yaml and its schema from them.)
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Select {
    /// Namespaces whose objects (and the Namespaces themselves) come back; empty: all.
    #[schemars(inner(pattern(LABEL)))]
    pub include_namespaces: Vec<String>,
    /// Namespaces whose objects do not come back.
    #[schemars(inner(pattern(LABEL)))]
    pub exclude_namespaces: Vec<String>,
    /// Kinds that come back: Kind (Deployment), Kind.group (Deployment.apps), plural or
    /// plural.group (deployments.apps), without case; empty: all.
    #[schemars(inner(pattern(KIND)))]
    pub include_kinds: Vec<String>,
    /// Kinds that do not come back, named as in includeKinds.
    #[schemars(inner(pattern(KIND)))]
    pub exclude_kinds: Vec<String>,
    /// A label selector, as kubectl takes it: "app=web,tier in (front,back),!legacy".
    #[schemars(pattern(SELECTOR))]
    pub selector: String,
    /// One object each: KIND/NAMESPACE/NAME, or KIND/NAME for a cluster-scoped object.
    #[schemars(inner(pattern(OBJECT)))]
    pub objects: Vec<String>,
}

impl Select {
    pub fn is_empty(&self) -> bool {
        *self == Select::default()
    }

    /// Checks every rule; the error names the rule and says what is expected.
    pub fn compile(&self) -> Result<Selection, String> {
        for ns in self.include_namespaces.iter().chain(&self.exclude_namespaces) {
            if !is_dns_label(ns) {
                return Err(format!("{ns:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"));
            }
        }
        if let Some(both) = self.include_namespaces.iter().find(|n| self.exclude_namespaces.contains(n)) {
            return Err(format!("namespace {both} is both included and excluded"));
        }
        let include_kinds = kinds(&self.include_kinds)?;
        let exclude_kinds = kinds(&self.exclude_kinds)?;
        let selector = LabelSelector::parse(&self.selector).map_err(|e| format!("selector {:?}: {e}", self.selector))?;
        let objects = self.objects.iter().map(|o| ObjectRef::parse(o)).collect::<Result<Vec<_>, _>>()?;
        Ok(Selection {
            include_namespaces: self.include_namespaces.iter().cloned().collect(),
            exclude_namespaces: self.exclude_namespaces.iter().cloned().collect(),
            include_kinds,
            exclude_kinds,
            selector,
            objects,
        })
    }
}

fn kinds(list: &[String]) -> Result<BTreeSet<String>, String> {
    list.iter()
        .map(|k| {
            let k = k.trim().to_lowercase();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                Err(format!("{k:?} is not a kind (Deployment, Deployment.apps) or resource (deployments.apps)"))
            } else {
                Ok(k)
            }
        })
        .collect()
}

pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') && !s.starts_with('-') && !s.ends_with('-')
}

/// Whether `names` (lowercase) name the kind of an object: its kind (`deployment`), kind key
/// (`deployment.apps`), plural (`deployments`) or resource (`deployments.apps`).
pub(crate) fn names_kind(names: &BTreeSet<String>, kind_key: &str, kind: &str, plural: Option<&str>) -> bool {
    let group = kind_key.split_once('.').map(|(_, g)| g).unwrap_or("");
    let mut candidates = vec![kind_key.to_lowercase(), kind.to_lowercase()];
    if let Some(p) = plural {
        candidates.push(p.to_lowercase());
        if !group.is_empty() {
            candidates.push(format!("{p}.{group}").to_lowercase());
        }
    }
    candidates.iter().any(|c| names.contains(c))
}

/// One object named by `--object`.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectRef {
    kind: BTreeSet<String>,
    namespace: String,
    name: String,
}

impl ObjectRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let (kind, namespace, name) = match parts.as_slice() {
            [kind, name] => (*kind, "", *name),
            [kind, namespace, name] => (*kind, *namespace, *name),
            _ => return Err(format!("object {s:?}: use KIND/NAMESPACE/NAME, or KIND/NAME for a cluster-scoped object")),
        };
        if name.is_empty() || (parts.len() == 3 && !is_dns_label(namespace)) {
            return Err(format!("object {s:?}: use KIND/NAMESPACE/NAME, or KIND/NAME for a cluster-scoped object"));
        }
        Ok(ObjectRef { kind: kinds(&[kind.to_owned()]).map_err(|e| format!("object {s:?}: {e}"))?, namespace: namespace.into(), name: name.into() })
    }
}

/// The checked rules.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    include_namespaces: BTreeSet<String>,
    exclude_namespaces: BTreeSet<String>,
    include_kinds: BTreeSet<String>,
    exclude_kinds: BTreeSet<String>,
    selector: LabelSelector,
    objects: Vec<ObjectRef>,
}

impl Selection {
    /// Why the rules leave `entry` out, or `None` when it comes back. `plural` is the kind's
    /// resource name when the point records it.
    pub fn left_out(&self, entry: &Entry, plural: Option<&str>) -> Option<&'static str> {
        let is_namespace = entry.kind() == "Namespace" && entry.api_version() == "v1";
        let namespace = if is_namespace { entry.name() } else { entry.namespace() };
        let kind_key = entry.kind_key();
        let named_kind = |names: &BTreeSet<String>| names_kind(names, &kind_key, entry.kind(), plural);
        if !namespace.is_empty() {
            if self.exclude_namespaces.contains(namespace) {
                return Some("in --exclude-namespaces");
            }
            if !self.include_namespaces.is_empty() && !self.include_namespaces.contains(namespace) {
                return Some("not in --include-namespaces");
            }
        }
        if named_kind(&self.exclude_kinds) {
            return Some("kind in --exclude-kinds");
        }
        if !self.objects.is_empty() {
            let named = self.objects.iter().any(|o| {
                if is_namespace {
                    // The namespace of a named object comes with it.
                    return (o.namespace == entry.name() && !o.namespace.is_empty()) || (named_kind(&o.kind) && o.name == entry.name());
                }
                named_kind(&o.kind) && o.namespace == entry.namespace() && o.name == entry.name()
            });
            return if named { None } else { Some("not named by --object") };
        }
        if is_namespace {
            return None;
        }
        if !self.include_kinds.is_empty() && !named_kind(&self.include_kinds) {
            return Some("kind not in --include-kinds");
        }
        let labels = entry.object.pointer("/metadata/labels").and_then(|l| l.as_object());
        if !self.selector.matches(|k| labels.and_then(|l| l.get(k)).and_then(|v| v.as_str())) {
            return Some("labels do not match --selector");
        }
        None
    }
}

/// A label selector in kubectl's syntax.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    NotExists(String),
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        let (mut depth, mut start) = (0i32, 0usize);
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    terms.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
            if depth < 0 {
                return Err("unbalanced parentheses".into());
            }
        }
        if depth != 0 {
            return Err("unbalanced parentheses".into());
        }
        terms.push(&s[start..]);
        let mut out = Vec::new();
        for term in terms.iter().map(|t| t.trim()) {
            if term.is_empty() {
                if s.trim().is_empty() {
                    continue;
                }
                return Err("an empty requirement (two commas, or a trailing one)".into());
            }
            out.push(requirement(term)?);
        }
        Ok(LabelSelector(out))
    }

    pub fn matches<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.contains(l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        })
    }
}

fn requirement(term: &str) -> Result<Requirement, String> {
    let key = |k: &str| -> Result<String, String> {
        let k = k.trim();
        let ok = !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)) && k.matches('/').count() <= 1;
        if ok {
            Ok(k.to_owned())
        } else {
            Err(format!("{k:?} is not a label key"))
        }
    };
    let value = |v: &str| -> Result<String, String> {
        let v = v.trim();
        if v.len() <= 63 && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            Ok(v.to_owned())
        } else {
            Err(format!("{v:?} is not a label value"))
        }
    };
    let set = |rest: &str| -> Result<BTreeSet<String>, String> {
        let inner =
            rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(|| format!("{term:?}: the values go in parentheses: key in (a,b)"))?;
        inner.split(',').map(value).collect()
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok(Requirement::NotExists(key(k)?));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(Requirement::NotEquals(key(k)?, value(v)?));
    }
    if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return Ok(Requirement::Equals(key(k)?, value(v)?));
    }
    let words: Vec<&str> = term.splitn(2, char::is_whitespace).collect();
    if let [k, rest] = words.as_slice() {
        let rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("notin") {
            return Ok(Requirement::NotIn(key(k)?, set(r)?));
        }
        if let Some(r) = rest.strip_prefix("in") {
            return Ok(Requirement::In(key(k)?, set(r)?));
        }
        return Err(format!("{term:?}: expected key=value, key!=value, key in (a,b), key notin (a,b), key or !key"));
    }
    Ok(Requirement::Exists(key(term)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Category;
    use serde_json::json;

    fn entry(kind: &str, ns: &str, name: &str, labels: serde_json::Value) -> Entry {
        let (api_version, kind) = kind.split_once(' ').unwrap_or(("v1", kind));
        let mut o = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "labels": labels}});
        if !ns.is_empty() {
            o["metadata"]["namespace"] = json!(ns);
        }
        Entry { category: Category::Applications, object: o, source_uid: None }
    }

    #[test]
    fn label_selectors_parse_as_kubectl_takes_them() {
        let s = LabelSelector::parse("app=web, tier in (front,back),!legacy,env!=dev,team").unwrap();
        let labels = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        assert!(s.matches(labels(&[("app", "web"), ("tier", "front"), ("team", "a")])));
        assert!(!s.matches(labels(&[("app", "web"), ("tier", "db"), ("team", "a")])));
        assert!(!s.matches(labels(&[("app", "web"), ("tier", "front"), ("team", "a"), ("legacy", "1")])));
        assert!(!s.matches(labels(&[("app", "web"), ("tier", "front"), ("team", "a"), ("env", "dev")])));
        assert!(LabelSelector::parse("").unwrap().matches(|_| None));
        for bad in ["app in a,b", "a b c", "app=web,,x", "tier in (a", "ap p=1", "a=b=c d"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn each_rule_says_why_it_leaves_an_object_out() {
        let sel = Select {
            include_namespaces: vec!["shop".into(), "web".into()],
            exclude_kinds: vec!["secrets".into()],
            include_kinds: vec!["Deployment.apps".into(), "configmap".into()],
            selector: "app=web".into(),
            ..Default::default()
        }
        .compile()
        .unwrap();
        let web = json!({"app": "web"});
        assert_eq!(sel.left_out(&entry("apps/v1 Deployment", "shop", "d", web.clone()), Some("deployments")), None);
        assert_eq!(sel.left_out(&entry("apps/v1 Deployment", "noisy", "d", web.clone()), None), Some("not in --include-namespaces"));
        assert_eq!(sel.left_out(&entry("Secret", "shop", "s", web.clone()), Some("secrets")), Some("kind in --exclude-kinds"));
        assert_eq!(sel.left_out(&entry("Service", "shop", "s", web.clone()), Some("services")), Some("kind not in --include-kinds"));
        assert_eq!(sel.left_out(&entry("ConfigMap", "shop", "c", json!({"app": "db"})), None), Some("labels do not match --selector"));
        // Namespaces follow the namespace rules only.
        assert_eq!(sel.left_out(&entry("Namespace", "", "shop", json!({})), None), None);
        assert_eq!(sel.left_out(&entry("Namespace", "", "noisy", json!({})), None), Some("not in --include-namespaces"));
        // Cluster-scoped kinds are not namespace-filtered.
        let all = Select { exclude_namespaces: vec!["noisy".into()], ..Default::default() }.compile().unwrap();
        assert_eq!(all.left_out(&entry("rbac.authorization.k8s.io/v1 ClusterRole", "", "r", json!({})), None), None);
        assert_eq!(all.left_out(&entry("ConfigMap", "noisy", "c", json!({})), None), Some("in --exclude-namespaces"));
    }

    #[test]
    fn objects_are_named_with_their_namespace_which_comes_along() {
        let sel = Select { objects: vec!["deployment.apps/shop/web".into(), "ClusterRole/reader".into()], ..Default::default() }.compile().unwrap();
        assert_eq!(sel.left_out(&entry("apps/v1 Deployment", "shop", "web", json!({})), None), None);
        assert_eq!(sel.left_out(&entry("apps/v1 Deployment", "shop", "api", json!({})), None), Some("not named by --object"));
        assert_eq!(sel.left_out(&entry("rbac.authorization.k8s.io/v1 ClusterRole", "", "reader", json!({})), None), None);
        assert_eq!(sel.left_out(&entry("Namespace", "", "shop", json!({})), None), None);
        assert_eq!(sel.left_out(&entry("Namespace", "", "other", json!({})), None), Some("not named by --object"));
        for bad in ["web", "a/b/c/d", "Deployment/Shop/web", "Deploy ment/x"] {
            assert!(ObjectRef::parse(bad).is_err(), "{bad}");
        }
        assert!(Select { include_namespaces: vec!["a".into()], exclude_namespaces: vec!["a".into()], ..Default::default() }.compile().is_err());
        assert!(Select { include_namespaces: vec!["Shop".into()], ..Default::default() }.compile().is_err());
    }
}
