//! The Lease that keeps two restores from running in one DR namespace at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

use super::{api_err, RestoreError};

/// The Lease that keeps two restores from running in one DR namespace at once.
pub const LEASE_NAME: &str = "kubectl-dr-restore";
/// A holder that stops renewing loses the Lease after this long (a killed pod, a deleted Job).
const LEASE_SECONDS: i32 = 30;
const LEASE_RENEW: Duration = Duration::from_secs(10);

/// The restore's Lease: acquired before the first read of the cluster's DR settings,
/// renewed in the background, deleted at the end.
pub(super) struct LeaseGuard {
    api: Api<Lease>,
    renew: tokio::task::JoinHandle<()>,
}

impl LeaseGuard {
    pub(super) async fn acquire(client: &Client, namespace: &str, holder: &str) -> Result<Self, RestoreError> {
        let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
        let now = || MicroTime(Timestamp::now());
        let mine = |rv: Option<String>| -> Lease {
            serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": LEASE_NAME, "namespace": namespace, "resourceVersion": rv},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": LEASE_SECONDS, "acquireTime": now(), "renewTime": now()}
            }))
            .expect("a Lease")
        };
        let what = format!("acquiring Lease {LEASE_NAME} in namespace {namespace}");
        match api.create(&PostParams::default(), &mine(None)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let current = api.get(LEASE_NAME).await.map_err(api_err(&what))?;
                let spec = current.spec.clone().unwrap_or_default();
                let other = spec.holder_identity.clone().unwrap_or_default();
                let renewed = spec.renew_time.as_ref().map(|t| t.0);
                let expired = renewed.is_none_or(|t| {
                    let age = Timestamp::now().as_second() - t.as_second();
                    age > i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS))
                });
                if other != holder && !expired {
                    return Err(RestoreError::Busy {
                        holder: other,
                        namespace: namespace.into(),
                        renewed: renewed.map(|t| t.to_string()).unwrap_or_else(|| "never".into()),
                    });
                }
                // Ours from an interrupted run, or abandoned: take it over (a conflict means
                // someone else just did).
                api.replace(LEASE_NAME, &PostParams::default(), &mine(current.metadata.resource_version.clone())).await.map_err(|e| match e {
                    kube::Error::Api(s) if s.code == 409 => {
                        RestoreError::Busy { holder: "another restore".into(), namespace: namespace.into(), renewed: "just now".into() }
                    }
                    e => RestoreError::Api { what: what.clone(), source: e },
                })?;
            }
            Err(e) => return Err(RestoreError::Api { what, source: e }),
        }
        let renew_api = api.clone();
        let renew = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE_RENEW).await;
                let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
                if let Err(e) = renew_api.patch(LEASE_NAME, &PatchParams::default(), &Patch::Merge(patch)).await {
                    tracing::warn!(error = %crate::error_text(&e), "renewing the restore Lease");
                }
            }
        });
        Ok(Self { api, renew })
    }

    pub(super) async fn release(self) {
        self.renew.abort();
        if let Err(e) = self.api.delete(LEASE_NAME, &DeleteParams::default()).await {
            tracing::warn!(error = %crate::error_text(&e), "deleting the restore Lease (it expires by itself)");
        }
    }
}
