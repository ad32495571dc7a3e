//! What a cluster serves, found one way for everyone who asks: the backup (what to list), the
//! restore's plan and preflight (which versions and plurals the target serves, to convert
//! objects and to reach them), drills and `diff --live` (reading objects back), and the
//! apply's lookup of a kind that a CRD the restore just wrote defines.
//!
//! Each group version is read on its own, so an aggregated API that is down (a
//! metrics-server answering 503) leaves out its own kinds and nothing else; the core group
//! must answer. Every version of a group is read, preferred first: an older cluster may serve
//! a kind only in a version that is not the preferred one (CronJob in batch/v1beta1 next to
//! batch/v1 Jobs, before 1.21).

use std::collections::HashMap;
use std::time::Duration;

use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiGroup, ApiResource};
use kube::Client;

/// Every group version the cluster answered for, and those it did not.
pub struct Discovered {
    /// The core group's `v1` first, then each group's versions, preferred first; each
    /// `ApiGroup` holds the one version it was read for.
    pub groups: Vec<ApiGroup>,
    /// `group/version`s whose discovery failed (an unavailable aggregated API): their kinds
    /// are left out. When a group's preferred version fails, its others are not asked.
    pub unavailable: Vec<String>,
}

/// Reads what the cluster serves. Fails only when the group list or the core group does not
/// answer (the retry layer under the client has already retried a brief outage).
pub async fn discover(client: &Client) -> Result<Discovered, kube::Error> {
    let listed = client.list_api_groups().await?;
    let mut groups = vec![kube::discovery::pinned_group(client, &GroupVersion::gv("", "v1")).await?];
    let mut unavailable = Vec::new();
    for g in listed.groups {
        let Some(preferred) = g.preferred_version.map(|v| v.version).or_else(|| g.versions.first().map(|v| v.version.clone())) else { continue };
        let others = g.versions.iter().map(|v| v.version.clone()).filter(|v| *v != preferred);
        for version in std::iter::once(preferred.clone()).chain(others) {
            match kube::discovery::pinned_group(client, &GroupVersion::gv(&g.name, &version)).await {
                Ok(group) => groups.push(group),
                Err(e) => {
                    tracing::warn!(group = %g.name, version = %version, error = %crate::error_text(&e), "API group version unavailable: its kinds are left out");
                    unavailable.push(format!("{}/{version}", g.name));
                    if version == preferred {
                        break;
                    }
                }
            }
        }
    }
    Ok(Discovered { groups, unavailable })
}

impl Discovered {
    /// What is served, by (group, kind): the restore's view.
    pub fn served(&self) -> ServedApis {
        let mut kinds: HashMap<(String, String), (Vec<String>, String)> = HashMap::new();
        for group in &self.groups {
            for (resource, _) in group.recommended_resources() {
                let entry = kinds.entry((resource.group.clone(), resource.kind.clone())).or_insert_with(|| (Vec::new(), resource.plural.clone()));
                if !entry.0.contains(&resource.version) {
                    entry.0.push(resource.version.clone());
                }
            }
        }
        ServedApis { kinds }
    }
}

/// What a cluster serves: for each (group, kind), its versions (preferred first) and resource
/// name. Read once before a restore's plan, so the plan can convert objects of versions the
/// target no longer serves.
#[derive(Clone, Debug, Default)]
pub struct ServedApis {
    kinds: HashMap<(String, String), (Vec<String>, String)>,
}

impl ServedApis {
    /// Discovers the cluster ([`discover`]) and keeps what is served.
    pub async fn discover(client: &Client) -> Result<Self, kube::Error> {
        Ok(discover(client).await?.served())
    }

    pub fn versions(&self, group: &str, kind: &str) -> Vec<String> {
        self.kinds.get(&(group.to_owned(), kind.to_owned())).map(|(v, _)| v.clone()).unwrap_or_default()
    }

    pub fn plural(&self, group: &str, kind: &str) -> Option<&str> {
        self.kinds.get(&(group.to_owned(), kind.to_owned())).map(|(_, p)| p.as_str())
    }

    pub fn serves(&self, api_version: &str, kind: &str) -> bool {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.versions(group, kind).iter().any(|v| v == version)
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}

/// How to reach one kind (`None`: not served). A real API server can serve a CRD's kind in
/// discovery a moment after the CRD reports `Established`, so a caller that has just written
/// the CRD asks `attempts` times, 300 ms apart; a kind not served is not an error.
pub async fn find_kind(client: &Client, api_version: &str, kind: &str, attempts: u32) -> Result<Option<(ApiResource, ApiCapabilities)>, kube::Error> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
    for attempt in 0..attempts.max(1) {
        match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(found) => return Ok(Some(found)),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(kube::Error::Discovery(_)) => {}
            Err(e) => return Err(e),
        }
        if attempt + 1 < attempts {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    Ok(None)
}
