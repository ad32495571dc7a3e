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

/// The chart's files as this build ships them: `values.yaml` names the job image repository
/// this build was made for (`crate::release`), and Chart.yaml this build's version (as `helm
/// package --version` would set it).
pub fn files() -> impl Iterator<Item = (&'static str, std::borrow::Cow<'static, str>)> {
    FILES.iter().map(|(path, text)| {
        let text = if *path == "Chart.yaml" {
            with_version(text, crate::release::VERSION).into()
        } else if *path == "values.yaml" {
            // values.yaml is generated from dr_core::restore::chart, which names the source
            // tree's repository on one line.
            let source_line = format!("  repository: {}\n", dr_core::restore::chart::SOURCE_IMAGE_REPOSITORY);
            assert!(text.contains(&source_line), "values.yaml names the image repository on one line");
            text.replace(&source_line, &format!("  repository: {}\n", crate::release::IMAGE_REPOSITORY)).into()
        } else {
            (*text).into()
        };
        (*path, text)
    })
}

/// Chart.yaml with `version` and `appVersion` set to `version`.
fn with_version(chart_yaml: &str, version: &str) -> String {
    chart_yaml
        .lines()
        .map(|line| {
            if line.starts_with("version:") {
                format!("version: {version}\n")
            } else if line.starts_with("appVersion:") {
                format!("appVersion: \"{version}\"\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}

/// The chart packaged as `helm package` would (reproducibly) and as the OCI artifact `images
/// mirror` pushes beside the image.
pub fn artifact() -> Result<dr_core::images::ChartArtifact, dr_core::images::ImageError> {
    let files: Vec<(&str, std::borrow::Cow<'static, str>)> = files().collect();
    dr_core::images::ChartArtifact::package(files.iter().map(|(path, text)| (*path, text.as_bytes())))
}

/// Writes the chart under `dir`; returns the chart's directory.
pub fn write_to(dir: &Path) -> std::io::Result<PathBuf> {
    let root = dir.join("dr-restore");
    for (path, text) in files() {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().expect("files are inside the chart"))?;
        std::fs::write(file, text.as_ref())?;
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

    #[test]
    fn the_packaged_chart_carries_this_builds_version_and_is_reproducible() {
        let chart = super::artifact().unwrap();
        assert_eq!((chart.name.as_str(), chart.version.as_str()), (crate::release::CHART_NAME, crate::release::VERSION));
        assert_eq!(chart.digest(), super::artifact().unwrap().digest());
        let chart_yaml = super::files().find(|(p, _)| *p == "Chart.yaml").unwrap().1;
        assert!(chart_yaml.contains(&format!("appVersion: \"{}\"\n", crate::release::VERSION)), "{chart_yaml}");
    }

    #[test]
    fn the_written_chart_names_this_builds_image_repository() {
        let values = super::files().find(|(p, _)| *p == "values.yaml").unwrap().1;
        let expected = format!("  repository: {}\n", crate::release::IMAGE_REPOSITORY);
        assert!(values.contains(&expected), "{values}");
    }
}
