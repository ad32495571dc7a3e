//! The chart's files generated from `ChartValues`: `values.schema.json` (what Helm checks
//! before it renders anything), `values.yaml` (the defaults, each with its documentation) and
//! the values table of the chart's README. Keys come in the order the fields are declared.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

use super::ChartValues;

/// Column at which values.yaml's comments wrap.
const WIDTH: usize = 96;

/// `values.schema.json`: JSON Schema draft-07 (what Helm 3 and 4 both read), every subschema
/// inline so that a reader sees each value where it is.
pub fn values_schema() -> Value {
    let generator = SchemaSettings::draft07().with(|s| s.inline_subschemas = true).into_generator();
    let mut schema = generator.into_root_schema_for::<ChartValues>().to_value();
    tidy(&mut schema);
    schema
}

/// What the generated schema holds beyond what Helm checks goes: `format` (schemars's integer
/// formats such as `uint32` are not JSON Schema formats, and a validator may reject unknown
/// ones) and `default` (values.yaml is where defaults live). Descriptions become one line.
fn tidy(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("format");
            map.remove("default");
            if let Some(Value::String(d)) = map.get_mut("description") {
                *d = one_line(d);
            }
            map.values_mut().for_each(tidy);
        }
        Value::Array(items) => items.iter_mut().for_each(tidy),
        _ => {}
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The defaults as YAML values, in field order (serde_yaml keeps a struct's field order).
fn defaults() -> serde_yaml::Mapping {
    match serde_yaml::to_value(ChartValues::default()).expect("chart values serialize") {
        serde_yaml::Value::Mapping(m) => m,
        _ => unreachable!("ChartValues is a struct"),
    }
}

fn key_of(key: &serde_yaml::Value) -> &str {
    key.as_str().expect("chart value keys are strings")
}

/// The sub-schema of a struct-valued property, if it is one (maps of free keys are leaves).
fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties").and_then(Value::as_object)
}

fn description(schema: &Value) -> Option<&str> {
    schema.get("description").and_then(Value::as_str).filter(|d| !d.is_empty())
}

/// A default on one line, as YAML writes it.
fn inline(value: &serde_yaml::Value) -> String {
    match value {
        serde_yaml::Value::Mapping(m) if !m.is_empty() => serde_json::to_string(value).expect("yaml values are json"),
        serde_yaml::Value::Sequence(s) if !s.is_empty() => serde_json::to_string(value).expect("yaml values are json"),
        _ => serde_yaml::to_string(value).expect("yaml values serialize").trim_end().to_owned(),
    }
}

fn wrap(text: &str, indent: usize, out: &mut String) {
    let prefix = format!("{}# ", " ".repeat(indent));
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && prefix.len() + line.len() + 1 + word.len() > WIDTH {
            out.push_str(&prefix);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&prefix);
        out.push_str(&line);
        out.push('\n');
    }
}

/// `values.yaml`: every default, each under the documentation of its field.
pub fn values_yaml() -> String {
    let schema = values_schema();
    let mut out = String::new();
    out.push_str("# Generated from dr-core/src/restore/chart/ (ChartValues); do not edit: see its README.\n#\n");
    wrap(description(&schema).expect("ChartValues is documented"), 0, &mut out);
    fn emit(values: &serde_yaml::Mapping, props: &Map<String, Value>, indent: usize, out: &mut String) {
        for (key, value) in values {
            let key = key_of(key);
            let schema = &props[key];
            if indent == 0 {
                out.push('\n');
            }
            if let Some(d) = description(schema) {
                wrap(d, indent, out);
            }
            match (value, properties(schema)) {
                (serde_yaml::Value::Mapping(children), Some(child_props)) => {
                    out.push_str(&format!("{}{key}:\n", " ".repeat(indent)));
                    emit(children, child_props, indent + 2, out);
                }
                (serde_yaml::Value::Mapping(m), None) if !m.is_empty() => {
                    out.push_str(&format!("{}{key}:\n", " ".repeat(indent)));
                    let nested = serde_yaml::to_string(m).expect("yaml values serialize");
                    for line in nested.lines() {
                        out.push_str(&format!("{}{line}\n", " ".repeat(indent + 2)));
                    }
                }
                _ => out.push_str(&format!("{}{key}: {}\n", " ".repeat(indent), inline(value))),
            }
        }
    }
    emit(&defaults(), properties(&schema).expect("ChartValues has fields"), 0, &mut out);
    out
}

/// The README's values table: one row per value, with its default and documentation.
pub fn values_table() -> String {
    let schema = values_schema();
    let mut out = String::from("| value | default | meaning |\n| --- | --- | --- |\n");
    fn rows(values: &serde_yaml::Mapping, schema: &Value, path: &str, out: &mut String) {
        let props = properties(schema).expect("a struct's schema has properties");
        let required: Vec<&str> = schema.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        for (key, value) in values {
            let key = key_of(key);
            let name = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
            let sub = &props[key];
            match (value, properties(sub)) {
                (serde_yaml::Value::Mapping(children), Some(_)) => rows(children, sub, &name, out),
                _ => {
                    let default = match value {
                        _ if required.contains(&key) => "required".to_owned(),
                        serde_yaml::Value::String(s) if s.is_empty() => String::new(),
                        _ => format!("`{}`", inline(value)),
                    };
                    let meaning = description(sub).unwrap_or("").replace('|', "\\|");
                    out.push_str(&format!("| `{name}` | {default} | {meaning} |\n"));
                }
            }
        }
    }
    rows(&defaults(), &schema, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const TABLE_START: &str = "<!-- values table: generated from dr-core/src/restore/chart/; do not edit -->\n";
    const TABLE_END: &str = "<!-- end of values table -->\n";

    fn chart_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/dr-restore")
    }

    /// The README with its values table replaced by `table`.
    fn readme_with(readme: &str, table: &str) -> String {
        let start = readme.find(TABLE_START).expect("the chart README marks where its values table starts") + TABLE_START.len();
        let end = readme[start..].find(TABLE_END).expect("the chart README marks where its values table ends") + start;
        format!("{}{table}{}", &readme[..start], &readme[end..])
    }

    /// values.yaml, values.schema.json and the README's table are what `ChartValues` generates.
    /// `DR_WRITE_REFERENCE=1 cargo nextest run --release --workspace chart_files` rewrites them.
    #[test]
    fn chart_files_are_current() {
        let dir = chart_dir();
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
        let files = [
            ("values.yaml", values_yaml()),
            ("values.schema.json", serde_json::to_string_pretty(&values_schema()).unwrap() + "\n"),
            ("README.md", readme_with(&readme, &values_table())),
        ];
        let write = std::env::var_os("DR_WRITE_REFERENCE").is_some();
        let mut stale = Vec::new();
        for (name, generated) in files {
            let path = dir.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(generated.as_str()) {
                if write {
                    std::fs::write(&path, generated).unwrap();
                } else {
                    stale.push(name);
                }
            }
        }
        assert!(
            stale.is_empty(),
            "charts/dr-restore/{stale:?} differ from what dr-core/src/restore/chart/ generates: \
             DR_WRITE_REFERENCE=1 cargo nextest run --release --workspace chart_files"
        );
    }

    /// What values.yaml holds reads back as the defaults, and the overlays name only values
    /// the type has.
    #[test]
    fn values_files_read_as_chart_values() {
        let dir = chart_dir();
        let values: ChartValues = serde_yaml::from_str(&std::fs::read_to_string(dir.join("values.yaml")).unwrap()).unwrap();
        assert_eq!(values, ChartValues::default());
        for overlay in ["values-fips.yaml", "values-hardened.yaml"] {
            let values: ChartValues = serde_yaml::from_str(&std::fs::read_to_string(dir.join(overlay)).unwrap()).unwrap_or_else(|e| panic!("{overlay}: {e}"));
            assert_ne!(values, ChartValues::default(), "{overlay} changes something");
        }
    }

    #[test]
    fn overrides_hold_only_what_differs_from_the_defaults() {
        let mut values = ChartValues::default();
        assert_eq!(values.overrides(), serde_json::json!({}));
        values.source_cluster_id = "abc".into();
        values.restore.timeout = 45;
        values.mapping.namespaces.insert("shop".into(), "shop-dr".into());
        values.vault.auth_mount = "kubernetes".into();
        assert_eq!(
            values.overrides(),
            serde_json::json!({"sourceClusterID": "abc", "restore": {"timeout": 45}, "mapping": {"namespaces": {"shop": "shop-dr"}}})
        );
    }
}
