//! Resource modifiers: rules in a ConfigMap of the DR namespace (key `rules.yaml`, named by
//! chart value `resourceModifiers.configMap` / `--resource-modifiers`) for what the mappings do
//! not cover, like Velero's. Each rule matches objects by kind, namespace, name and labels
//! (as they will be written: after API conversion and the mappings) and applies JSON patches
//! (RFC 6902) and regex substitutions on string fields.
//!
//! ```yaml
//! version: v1
//! rules:
//!   - match: {kinds: [Deployment.apps], namespaces: [shop], nameRegex: "^web", selector: "tier=front"}
//!     patches:
//!       - {op: replace, path: /spec/replicas, value: 1}
//!     substitutions:
//!       - {path: "/spec/template/spec/containers/*/env/*/value", regex: "prod-db", replacement: "dr-db"}
//! ```
//!
//! The rules are parsed and checked before the point is read; a rule that matches an object
//! but cannot apply to it (a path that is not there) fails the plan, naming both, before
//! anything is written. A failing `test` operation is a condition: the rule is not applied.

use std::collections::BTreeSet;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::select::{names_kind, LabelSelector};

/// The ConfigMap key holding the rules.
pub const RULES_KEY: &str = "rules.yaml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    version: String,
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleSpec {
    #[serde(rename = "match", default)]
    matches: MatchSpec,
    #[serde(default)]
    patches: Vec<Value>,
    #[serde(default)]
    substitutions: Vec<SubstitutionSpec>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MatchSpec {
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
    name_regex: Option<String>,
    #[serde(default)]
    selector: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubstitutionSpec {
    path: String,
    regex: String,
    replacement: String,
}

#[derive(Clone, Debug)]
enum Op {
    Add(Vec<String>, Value),
    Remove(Vec<String>),
    Replace(Vec<String>, Value),
    Test(Vec<String>, Value),
    Move(Vec<String>, Vec<String>),
    Copy(Vec<String>, Vec<String>),
}

#[derive(Clone, Debug)]
struct Rule {
    kinds: BTreeSet<String>,
    namespaces: BTreeSet<String>,
    names: BTreeSet<String>,
    name_regex: Option<Regex>,
    selector: LabelSelector,
    ops: Vec<Op>,
    substitutions: Vec<(Vec<String>, Regex, String)>,
}

/// The checked rules of one ConfigMap.
#[derive(Clone, Debug, Default)]
pub struct Modifiers {
    source: String,
    rules: Vec<Rule>,
}

fn pointer(path: &str, what: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or_else(|| format!("{what} {path:?} is not a JSON pointer (it starts with /)"))?;
    Ok(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect())
}

impl Modifiers {
    /// Parses the rules of ConfigMap `source` (for messages).
    pub fn parse(source: &str, yaml: &str) -> Result<Self, String> {
        let file: RulesFile = serde_yaml::from_str(yaml).map_err(|e| format!("{source}: {e}"))?;
        if file.version != "v1" {
            return Err(format!("{source}: version {:?} is not supported (use v1)", file.version));
        }
        let mut rules = Vec::new();
        for (i, spec) in file.rules.into_iter().enumerate() {
            let at = format!("{source}: rule {}", i + 1);
            if spec.patches.is_empty() && spec.substitutions.is_empty() {
                return Err(format!("{at} has neither patches nor substitutions"));
            }
            let mut ops = Vec::new();
            for p in &spec.patches {
                let path = |key: &str| -> Result<Vec<String>, String> {
                    pointer(p[key].as_str().ok_or_else(|| format!("{at}: a patch without {key}"))?, &format!("{at}: {key}"))
                };
                let value = || p.get("value").cloned().ok_or_else(|| format!("{at}: {} needs a value", p["op"]));
                ops.push(match p["op"].as_str() {
                    Some("add") => Op::Add(path("path")?, value()?),
                    Some("remove") => Op::Remove(path("path")?),
                    Some("replace") => Op::Replace(path("path")?, value()?),
                    Some("test") => Op::Test(path("path")?, value()?),
                    Some("move") => Op::Move(path("from")?, path("path")?),
                    Some("copy") => Op::Copy(path("from")?, path("path")?),
                    _ => return Err(format!("{at}: op {} is not a JSON patch operation (add, remove, replace, test, move, copy)", p["op"])),
                });
            }
            let substitutions = spec
                .substitutions
                .into_iter()
                .map(|s| {
                    Ok((
                        pointer(&s.path, &format!("{at}: substitution path"))?,
                        Regex::new(&s.regex).map_err(|e| format!("{at}: regex {:?}: {e}", s.regex))?,
                        s.replacement,
                    ))
                })
                .collect::<Result<_, String>>()?;
            let m = spec.matches;
            rules.push(Rule {
                kinds: m.kinds.iter().map(|k| k.to_lowercase()).collect(),
                namespaces: m.namespaces.into_iter().collect(),
                names: m.names.into_iter().collect(),
                name_regex: m.name_regex.map(|r| Regex::new(&r).map_err(|e| format!("{at}: nameRegex {r:?}: {e}"))).transpose()?,
                selector: LabelSelector::parse(&m.selector).map_err(|e| format!("{at}: selector: {e}"))?,
                ops,
                substitutions,
            });
        }
        Ok(Modifiers { source: source.into(), rules })
    }

    /// Applies every rule that matches; how many applied, or why one could not.
    pub fn apply(&self, object: &mut Value, plural: Option<&str>) -> Result<usize, String> {
        let mut applied = 0;
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.matches(object, plural) {
                continue;
            }
            let mut copy = object.clone();
            match rule.apply(&mut copy) {
                Ok(true) => {
                    *object = copy;
                    applied += 1;
                }
                Ok(false) => {}
                Err(e) => return Err(format!("resource modifier {} rule {}: {e}", self.source, i + 1)),
            }
        }
        Ok(applied)
    }
}

impl Rule {
    fn matches(&self, o: &Value, plural: Option<&str>) -> bool {
        let (api_version, kind) = (o["apiVersion"].as_str().unwrap_or_default(), o["kind"].as_str().unwrap_or_default());
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = o["metadata"]["namespace"].as_str().unwrap_or_default();
        let labels = o.pointer("/metadata/labels").and_then(Value::as_object);
        (self.kinds.is_empty() || names_kind(&self.kinds, &crate::catalog::kind_key(api_version, kind), kind, plural))
            && (self.namespaces.is_empty() || self.namespaces.contains(namespace))
            && (self.names.is_empty() || self.names.contains(name))
            && self.name_regex.as_ref().is_none_or(|r| r.is_match(name))
            && self.selector.matches(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    /// `Ok(false)`: a `test` failed, so the rule does not apply.
    fn apply(&self, o: &mut Value) -> Result<bool, String> {
        for op in &self.ops {
            match op {
                Op::Test(path, value) => {
                    if get(o, path) != Some(value) {
                        return Ok(false);
                    }
                }
                Op::Add(path, value) => add(o, path, value.clone())?,
                Op::Remove(path) => {
                    remove(o, path)?;
                }
                Op::Replace(path, value) => {
                    let slot = get_mut(o, path).ok_or_else(|| format!("replace: {} is not there", show(path)))?;
                    *slot = value.clone();
                }
                Op::Move(from, path) => {
                    let v = remove(o, from)?;
                    add(o, path, v)?;
                }
                Op::Copy(from, path) => {
                    let v = get(o, from).cloned().ok_or_else(|| format!("copy: {} is not there", show(from)))?;
                    add(o, path, v)?;
                }
            }
        }
        for (path, re, replacement) in &self.substitutions {
            substitute(o, path, re, replacement);
        }
        Ok(true)
    }
}

fn show(path: &[String]) -> String {
    format!("/{}", path.join("/"))
}

fn get<'a>(o: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(o, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn get_mut<'a>(o: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(o, |v, seg| match v {
        Value::Object(m) => m.get_mut(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(move |i| a.get_mut(i)),
        _ => None,
    })
}

fn add(o: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((last, parent)) = path.split_last() else {
        *o = value;
        return Ok(());
    };
    match get_mut(o, parent) {
        Some(Value::Object(m)) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if last == "-" { a.len() } else { last.parse::<usize>().map_err(|_| format!("add: {} is not an array index", show(path)))? };
            if i > a.len() {
                return Err(format!("add: {} is past the end of the array", show(path)));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("add: the parent of {} is not there", show(path))),
    }
}

fn remove(o: &mut Value, path: &[String]) -> Result<Value, String> {
    let (last, parent) = path.split_last().ok_or("remove: the whole object cannot be removed")?;
    let missing = || format!("remove: {} is not there", show(path));
    match get_mut(o, parent) {
        Some(Value::Object(m)) => m.remove(last).ok_or_else(missing),
        Some(Value::Array(a)) => match last.parse::<usize>() {
            Ok(i) if i < a.len() => Ok(a.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

/// Substitutes in every string at `path`, where `*` stands for every member or element.
fn substitute(v: &mut Value, path: &[String], re: &Regex, replacement: &str) {
    let Some((first, rest)) = path.split_first() else {
        if let Value::String(s) = v {
            let new = re.replace_all(s, replacement).into_owned();
            *s = new;
        }
        return;
    };
    match v {
        Value::Object(m) if first == "*" => m.values_mut().for_each(|c| substitute(c, rest, re, replacement)),
        Value::Array(a) if first == "*" => a.iter_mut().for_each(|c| substitute(c, rest, re, replacement)),
        Value::Object(m) => {
            if let Some(c) = m.get_mut(first) {
                substitute(c, rest, re, replacement);
            }
        }
        Value::Array(a) => {
            if let Some(c) = first.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                substitute(c, rest, re, replacement);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: &str = r#"
version: v1
rules:
  - match: {kinds: [Deployment.apps], namespaces: [shop], nameRegex: "^web"}
    patches:
      - {op: test, path: /spec/replicas, value: 3}
      - {op: replace, path: /spec/replicas, value: 1}
      - {op: add, path: /metadata/labels/restored, value: "yes"}
  - match: {kinds: [deployments]}
    substitutions:
      - {path: "/spec/template/spec/containers/*/env/*/value", regex: "prod-(db|cache)", replacement: "dr-$1"}
"#;

    fn deployment(name: &str, replicas: u32) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "shop", "labels": {}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "env": [{"name": "DB", "value": "host=prod-db"}, {"name": "N", "value": "1"}]}]}}}})
    }

    #[test]
    fn rules_patch_and_substitute_what_they_match() {
        let m = Modifiers::parse("kasten-io/mods", RULES).unwrap();
        let mut web = deployment("web-1", 3);
        assert_eq!(m.apply(&mut web, Some("deployments")).unwrap(), 2);
        assert_eq!(web["spec"]["replicas"], 1);
        assert_eq!(web["metadata"]["labels"]["restored"], "yes");
        assert_eq!(web["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "host=dr-db");
        // A failing test is a condition: the first rule does not apply, the second does.
        let mut other = deployment("web-2", 5);
        assert_eq!(m.apply(&mut other, Some("deployments")).unwrap(), 1);
        assert_eq!(other["spec"]["replicas"], 5);
        assert!(other["metadata"]["labels"].get("restored").is_none());
        let mut api = deployment("api", 3);
        assert_eq!(m.apply(&mut api, Some("deployments")).unwrap(), 1);
    }

    #[test]
    fn a_rule_that_cannot_apply_names_itself_and_bad_rules_do_not_parse() {
        let m =
            Modifiers::parse("kasten-io/mods", "version: v1\nrules:\n- match: {kinds: [ConfigMap]}\n  patches: [{op: remove, path: /data/missing}]\n").unwrap();
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
        let err = m.apply(&mut cm, None).unwrap_err();
        assert!(err.contains("rule 1") && err.contains("/data/missing"), "{err}");
        for bad in [
            "version: v2\nrules: []",
            "version: v1\nrules:\n- match: {kinds: [x]}\n",
            "version: v1\nrules:\n- patches: [{op: frobnicate, path: /a}]",
            "version: v1\nrules:\n- patches: [{op: replace, path: a, value: 1}]",
            "version: v1\nrules:\n- substitutions: [{path: /a, regex: '(', replacement: b}]",
            "version: v1\nrules:\n- match: {selector: 'a in b'}\n  patches: [{op: remove, path: /a}]",
            "version: v1\nrules:\n- match: {kindz: [a]}\n  patches: [{op: remove, path: /a}]",
            "not yaml: [",
        ] {
            assert!(Modifiers::parse("m", bad).is_err(), "{bad}");
        }
    }
}
