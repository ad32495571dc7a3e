//! The restore controls: what comes back (`select`), under which names and onto which
//! infrastructure (`mapping`), with which rewrites (`resourceModifiers`), and what happens to
//! objects the target already has (`existing`). One type, the chart's values as they are
//! named: the chart hands them to the Job with the rest of its values (`DR_RESTORE_VALUES`), the
//! plugin builds them from its flags, and both check them here before anything is written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mapping::{CompiledMapping, Mapping};
use super::modifiers::Modifiers;
use super::select::{Select, Selection};
use crate::discovery::ServedApis;

/// What a restore does with an object the target already has (not one an earlier run of this
/// restore wrote).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Existing {
    /// Leave it as it is (the report says whether it equals the point).
    #[default]
    Skip,
    /// Make it what the point says: server-side apply, forced (reported as updated).
    Update,
}

impl Existing {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Existing::Skip),
            "update" => Ok(Existing::Update),
            other => Err(format!("{other:?}: use skip or update")),
        }
    }
}

/// Rewrites applied to objects before they are written (`resourceModifiers`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ModifiersRef {
    /// A ConfigMap in the release namespace with rules (key rules.yaml: JSON patches and regex
    /// substitutions per kind/namespace/name), checked before anything is written.
    #[schemars(pattern(super::patterns::NAME_OR_EMPTY))]
    pub config_map: String,
}

/// The chart's `select`, `mapping`, `resourceModifiers` and `existing` values.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RestoreControls {
    pub select: Select,
    pub mapping: Mapping,
    pub resource_modifiers: ModifiersRef,
    pub existing: Existing,
}

impl RestoreControls {
    /// Checks everything but the modifier rules (which live in the cluster).
    pub fn check(&self, dr_namespace: &str) -> Result<(), String> {
        self.select.compile().map_err(|e| format!("select: {e}"))?;
        self.mapping.compile(dr_namespace).map_err(|e| format!("mapping: {e}"))?;
        if !self.resource_modifiers.config_map.is_empty() && !super::select::is_dns_label(&self.resource_modifiers.config_map.replace('.', "-")) {
            return Err(format!("resourceModifiers.configMap {:?} is not a ConfigMap name", self.resource_modifiers.config_map));
        }
        Ok(())
    }

    /// The checked form the plan uses; `modifiers` are the parsed rules, if any.
    pub fn compile(&self, dr_namespace: &str, modifiers: Option<Modifiers>) -> Result<Controls, String> {
        Ok(Controls {
            selection: self.select.compile().map_err(|e| format!("select: {e}"))?,
            mapping: self.mapping.compile(dr_namespace).map_err(|e| format!("mapping: {e}"))?,
            modifiers,
            existing: self.existing,
        })
    }
}

/// The checked controls.
#[derive(Clone, Debug, Default)]
pub struct Controls {
    pub selection: Selection,
    pub mapping: CompiledMapping,
    pub modifiers: Option<Modifiers>,
    pub existing: Existing,
}

/// The point's resource name for a kind key (`manifest.resources`), else the target's.
pub(crate) fn plural_of<'a>(resources: &'a BTreeMap<String, String>, served: &'a ServedApis, object: &Value) -> Option<&'a str> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let key = crate::catalog::kind_key(api_version, kind);
    resources.get(&key).map(String::as_str).or_else(|| served.plural(api_version.split_once('/').map_or("", |(g, _)| g), kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_controls_are_the_charts_values_and_unknown_ones_are_refused() {
        let c: RestoreControls = serde_json::from_value(json!({
            "select": {"includeNamespaces": ["shop"], "selector": "app=web", "objects": []},
            "mapping": {"namespaces": {"shop": "shop-dr"}, "storageClasses": {}, "imageRegistries": {}, "hostNameKinds": []},
            "resourceModifiers": {"configMap": "mods"},
            "existing": "update"
        }))
        .unwrap();
        assert_eq!(c.existing, Existing::Update);
        assert!(c.check("kasten-io").is_ok());
        assert!(serde_json::from_value::<RestoreControls>(json!({"select": {"includeNamespace": ["x"]}})).is_err());
        assert!(serde_json::from_value::<RestoreControls>(json!({"existing": "replace"})).is_err());
        let bad = RestoreControls { select: Select { selector: "a in b".into(), ..Default::default() }, ..Default::default() };
        assert!(bad.check("kasten-io").unwrap_err().starts_with("select: selector"));
    }
}
