//! Kubernetes manifests on disk: reading a directory of YAML/JSON into catalog entries (to
//! make a point without a cluster) and writing a point back out as one YAML file per object.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::catalog::{classify, is_cluster_scoped_kind, Entry};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: document {doc} is not valid YAML or JSON: {detail}")]
    Parse { path: PathBuf, doc: usize, detail: String },
    #[error("{path}: document {doc} is not a Kubernetes object (it needs apiVersion, kind and metadata.name)")]
    NotAnObject { path: PathBuf, doc: usize },
    #[error("{dir} holds no Kubernetes manifests (*.yaml, *.yml, *.json)")]
    Empty { dir: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// Metadata the API server sets, which a restore cannot and must not send back.
const SERVER_SET_METADATA: &[&str] =
    &["uid", "resourceVersion", "generation", "managedFields", "creationTimestamp", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"];

/// Removes the fields the API server sets on an object.
pub fn strip_server_fields(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_SET_METADATA {
            meta.remove(*f);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            ann.remove("kubectl.kubernetes.io/last-applied-configuration");
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
    }
}

/// Reads every `*.yaml`, `*.yml` and `*.json` file under `dir` (recursively, in path order)
/// into catalog entries. Objects without a namespace get `default_namespace` unless their
/// kind is cluster-scoped; `List` objects are expanded.
pub fn read_dir(dir: &Path, dr_namespace: &str, default_namespace: &str) -> Result<Vec<Entry>, ManifestError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let mut entries = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io { path: path.clone(), source })?;
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value: Value = serde::Deserialize::deserialize(doc)
                .map_err(|e| ManifestError::Parse { path: path.clone(), doc: i + 1, detail: e.to_string() })?;
            if value.is_null() {
                continue;
            }
            let items = match value.get("kind").and_then(Value::as_str) {
                Some(k) if k.ends_with("List") && value.get("items").is_some() => {
                    value["items"].as_array().cloned().unwrap_or_default()
                }
                _ => vec![value],
            };
            for mut object in items {
                let valid = object.get("apiVersion").and_then(Value::as_str).is_some()
                    && object.get("kind").and_then(Value::as_str).is_some()
                    && object.pointer("/metadata/name").and_then(Value::as_str).is_some();
                if !valid {
                    return Err(ManifestError::NotAnObject { path: path.clone(), doc: i + 1 });
                }
                strip_server_fields(&mut object);
                let kind = object["kind"].as_str().unwrap_or_default().to_owned();
                let cluster_scoped = is_cluster_scoped_kind(&kind);
                if cluster_scoped {
                    object["metadata"].as_object_mut().expect("checked").remove("namespace");
                } else if object.pointer("/metadata/namespace").and_then(Value::as_str).is_none() {
                    object["metadata"]["namespace"] = Value::String(default_namespace.to_owned());
                }
                let category = classify(&object, cluster_scoped, dr_namespace);
                entries.push(Entry { category, object, source_uid: None });
            }
        }
    }
    if entries.is_empty() {
        return Err(ManifestError::Empty { dir: dir.to_owned() });
    }
    Ok(entries)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let rd = std::fs::read_dir(dir).map_err(|source| ManifestError::Io { path: dir.to_owned(), source })?;
    for entry in rd {
        let entry = entry.map_err(|source| ManifestError::Io { path: dir.to_owned(), source })?;
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(path);
        }
    }
    Ok(())
}

/// Where `export` puts an object, relative to the output directory:
/// `cluster/<kind>[.<group>]/<name>.yaml` or `namespaces/<ns>/<kind>[.<group>]/<name>.yaml`.
pub fn export_path(entry: &Entry) -> PathBuf {
    let kind_dir = safe_segment(&entry.kind_key().to_lowercase());
    let file = format!("{}.yaml", safe_segment(entry.name()));
    match entry.namespace() {
        "" => PathBuf::from("cluster").join(kind_dir).join(file),
        ns => PathBuf::from("namespaces").join(safe_segment(ns)).join(kind_dir).join(file),
    }
}

/// The longest path segment kept as it is; with `.yaml` it stays under the 255 bytes file
/// systems allow (Kubernetes names go up to 253).
const MAX_SEGMENT: usize = 200;

/// A path segment for `s`: `s` itself when it is safe and short; otherwise a safe, shortened
/// form with `~` and a hash of `s`, so two names never share a file (`foo@bar` and `foo#bar`
/// used to overwrite each other). `~` is never in a kept name, so the forms cannot meet.
fn safe_segment(s: &str) -> String {
    let cleaned: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "._:-".contains(c) { c } else { '_' }).collect();
    if cleaned == s && s.len() <= MAX_SEGMENT && !matches!(s, "" | "." | "..") {
        return cleaned;
    }
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    let keep: String = cleaned.chars().take(MAX_SEGMENT - 9).collect();
    format!("{keep}~{}", hex::encode(&hash.as_ref()[..4]))
}

/// Writes one object as YAML under `root`.
pub fn write_object(root: &Path, entry: &Entry) -> Result<PathBuf, ManifestError> {
    let rel = export_path(entry);
    let path = root.join(&rel);
    let dir = path.parent().expect("has a parent");
    // Exports hold Secrets in clear: readable by their owner only.
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| ManifestError::Write { path: dir.to_owned(), source })?;
    let yaml = serde_yaml::to_string(&entry.object).expect("JSON values serialize as YAML");
    // create_new: never overwrite another object's file.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| ManifestError::Write { path: path.clone(), source })?;
    file.write_all(yaml.as_bytes()).map_err(|source| ManifestError::Write { path: path.clone(), source })?;
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Category;
    use serde_json::json;

    #[test]
    fn export_paths_are_browsable_and_safe() {
        let e = |object| Entry { category: Category::Applications, object, source_uid: None };
        assert_eq!(
            export_path(&e(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}))),
            PathBuf::from("namespaces/shop/deployment.apps/web.yaml")
        );
        assert_eq!(
            export_path(&e(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:view"}}))),
            PathBuf::from("cluster/clusterrole.rbac.authorization.k8s.io/system:view.yaml")
        );
        let odd = export_path(&e(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "..", "namespace": "a/b"}})));
        assert!(odd.starts_with("namespaces") && odd.components().count() == 4, "{odd:?}");
        assert!(!odd.to_string_lossy().contains("/../") && odd.to_string_lossy().contains("a_b~"), "{odd:?}");
        // Names made safe never share a file, and long names fit a file system.
        let at = export_path(&e(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foo@bar", "namespace": "shop"}})));
        let hash = export_path(&e(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foo#bar", "namespace": "shop"}})));
        let plain = export_path(&e(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "foo_bar", "namespace": "shop"}})));
        assert!(at != hash && at != plain && hash != plain, "{at:?} {hash:?} {plain:?}");
        let long = export_path(&e(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a".repeat(253), "namespace": "shop"}})));
        assert!(long.file_name().unwrap().len() < 255, "{long:?}");
    }

    #[test]
    fn server_fields_are_stripped() {
        let mut o = json!({"metadata": {"name": "x", "uid": "u", "resourceVersion": "1", "managedFields": [], "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}});
        strip_server_fields(&mut o);
        assert_eq!(o, json!({"metadata": {"name": "x"}}));
    }
}
