//! The `dr-restore` chart, embedded in the plugin so the chart always matches the plugin's
//! version and a restore needs no chart repository (air-gapped clusters).

use std::path::{Path, PathBuf};

macro_rules! chart_files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../charts/dr-restore/", $path)))),*]
    };
}

/// Every file of `charts/dr-restore` (a test checks none is missing).
pub const FILES: &[(&str, &str)] = chart_files!(
    "Chart.yaml",
    "README.md",
    "values.yaml",
    "values.schema.json",
    "values-fips.yaml",
    "values-hardened.yaml",
    "templates/_helpers.tpl",
    "templates/NOTES.txt",
    "templates/job.yaml",
    "templates/rbac.yaml",
    "templates/serviceaccount.yaml",
);

/// Writes the chart under `dir`; returns the chart's directory.
pub fn write_to(dir: &Path) -> std::io::Result<PathBuf> {
    let root = dir.join("dr-restore");
    for (path, text) in FILES {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().expect("files are inside the chart"))?;
        std::fs::write(file, text)?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_chart_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/dr-restore");
        let mut on_disk = Vec::new();
        for dir in [root.clone(), root.join("templates")] {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_file() {
                    on_disk.push(p.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = super::FILES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "add new chart files to plugin/src/chart.rs");
    }
}
