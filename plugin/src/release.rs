//! What this build deploys, fixed when it is built: the job image's repository (and its
//! digests, when the images were built before the plugin, as `scripts/dist` does). The plugin,
//! the chart it embeds and the DR CronJob it writes all take the image from here, so they
//! always agree.
//!
//! Build settings (environment variables of `cargo build`):
//! - `DR_IMAGE_REPOSITORY`: where the job images are published (`scripts/image --repository`);
//!   default [`LOCAL_REPOSITORY`], the name a local `scripts/image` build gets.
//! - `DR_IMAGE_DIGEST`, `DR_FIPS_IMAGE_DIGEST`: the images' manifest digests (`sha256:...`).
//! - `DR_BUILD_REVISION`: the source revision (git commit).

use dr_core::images::ImageRef;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The repository a build without `DR_IMAGE_REPOSITORY` names: images built here by
/// `scripts/image` are called this (podman and buildah name local images `localhost/...`), so a
/// development build never points at a registry nobody publishes to.
pub const LOCAL_REPOSITORY: &str = "localhost/kubectl-dr/dr-job";

pub const IMAGE_REPOSITORY: &str = match option_env!("DR_IMAGE_REPOSITORY") {
    Some(r) if !r.is_empty() => r,
    _ => LOCAL_REPOSITORY,
};

pub const REVISION: Option<&str> = non_empty(option_env!("DR_BUILD_REVISION"));
const IMAGE_DIGEST: Option<&str> = non_empty(option_env!("DR_IMAGE_DIGEST"));
const FIPS_IMAGE_DIGEST: Option<&str> = non_empty(option_env!("DR_FIPS_IMAGE_DIGEST"));

const fn non_empty(v: Option<&'static str>) -> Option<&'static str> {
    match v {
        Some(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// The job image this build deploys: the standard one, or the FIPS one (same repository,
/// tag `<version>-fips`).
pub fn job_image(fips: bool) -> ImageRef {
    let mut image = ImageRef::parse(IMAGE_REPOSITORY).expect("DR_IMAGE_REPOSITORY is a valid image repository (checked by a test)");
    image.tag = Some(if fips { format!("{VERSION}-fips") } else { VERSION.to_owned() });
    image.digest = if fips { FIPS_IMAGE_DIGEST } else { IMAGE_DIGEST }.map(str::to_owned);
    image
}

/// Where the dr-restore chart is published as an OCI artifact: beside the job image, in the
/// same registry and path (`.../dr-job` gives `.../dr-restore`), tagged with this version.
pub fn chart_repository() -> ImageRef {
    let image = job_image(false);
    let repository = match image.repository.rsplit_once('/') {
        Some((path, _)) => format!("{path}/{CHART_NAME}"),
        None => CHART_NAME.to_owned(),
    };
    ImageRef { registry: image.registry, repository, tag: Some(VERSION.to_owned()), digest: None }
}

/// The chart's name (its Chart.yaml), which is also the last segment of its OCI repository.
pub const CHART_NAME: &str = "dr-restore";

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_names_a_valid_repository_and_digests() {
        for fips in [false, true] {
            let image = super::job_image(fips);
            assert!(image.tag.as_deref().unwrap().starts_with(super::VERSION));
            if let Some(d) = &image.digest {
                assert!(d.starts_with("sha256:") && d.len() == 71, "{d}");
            }
        }
    }

    #[test]
    fn the_chart_is_published_beside_the_image() {
        let image = super::job_image(false);
        let chart = super::chart_repository();
        assert_eq!(chart.registry, image.registry);
        let path = image.repository.rsplit_once('/').map(|(p, _)| format!("{p}/")).unwrap_or_default();
        assert_eq!(chart.repository, format!("{path}dr-restore"));
        assert_eq!(chart.tag.as_deref(), Some(super::VERSION));
    }
}
