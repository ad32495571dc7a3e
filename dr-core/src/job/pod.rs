//! The job pod: what every pod running the job image has, whichever command it runs. The DR
//! CronJob (`backup`) and the replication CronJob (`replicate`) are built from it here; the
//! restore chart's Job template spells the same pod in Go templates, and a test renders the
//! chart and checks it against this definition (`restore-job/tests/job_pod.rs`,
//! `the_charts_pod_is_the_job_pod`).
//!
//! The hardening is the restricted Pod Security Standard and more: non-root 65532 (the image's
//! user), no privilege escalation, no capabilities, a read-only root with `/tmp` the one
//! writable place, the runtime's seccomp profile. The termination message falls back to the
//! log's tail, so a failure that happens before the job writes its message still says why.

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};

use super::env;
use crate::resources::{CA_BUNDLE_KEY, FILE_LOCATION_MOUNT};

/// The image's user and group.
pub const RUN_AS: i64 = 65532;
/// The one writable directory.
pub const TMP_MOUNT: &str = "/tmp";
/// Where a Vault token Secret is mounted; the token is its key `vault_token`.
pub const VAULT_TOKEN_DIR: &str = "/var/run/secrets/vault";
pub const VAULT_TOKEN_KEY: &str = "vault_token";
/// Where the CA that signed Vault's certificate is mounted, as `ca.crt`.
pub const VAULT_CA_MOUNT: &str = "/etc/kubectl-dr/vault-ca";
pub const TERMINATION_MESSAGE_POLICY: &str = "FallbackToLogsOnError";

pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
        ..Default::default()
    }
}

pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}

/// A variable from the downward API: a field of the pod itself.
fn pod_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource { field_ref: Some(ObjectFieldSelector { field_path: field_path.into(), ..Default::default() }), ..Default::default() }),
        ..Default::default()
    }
}

/// The restore pod's grant keeper (`dr-job grant-keeper`), a native sidecar: an init container
/// with `restartPolicy: Always` (Kubernetes 1.29+), which the kubelet starts before the main
/// container and stops with SIGTERM after it, so it can end the restore's cluster-wide grant
/// (`binding`) when the restore container was killed. It needs no volume: it only talks to
/// the API server, as the pod's service account.
pub fn grant_keeper(image: &str, job: &str, binding: &str, resources: ResourceRequirements) -> Container {
    Container {
        name: "grant-keeper".into(),
        image: Some(image.into()),
        args: Some(vec!["grant-keeper".into()]),
        restart_policy: Some("Always".into()),
        env: Some(vec![
            pod_field(env::NAMESPACE, "metadata.namespace"),
            pod_field(env::POD_NAME, "metadata.name"),
            EnvVar { name: env::RESTORE_HOLDER.into(), value: Some(job.into()), ..Default::default() },
            EnvVar { name: env::RBAC_BINDING.into(), value: Some(binding.into()), ..Default::default() },
        ]),
        termination_message_policy: Some(TERMINATION_MESSAGE_POLICY.into()),
        resources: Some(resources),
        security_context: Some(container_security_context()),
        ..Default::default()
    }
}

/// A job pod being put together: its container's command, environment and mounts.
#[derive(Clone, Debug)]
pub struct JobPod {
    container: String,
    command: String,
    env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
    volumes: Vec<Volume>,
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), read_only: read_only.then_some(true), ..Default::default() }
}

impl JobPod {
    /// `dr-job <command>` in a container named `container`, with `/tmp` and the pod's
    /// namespace (`DR_NAMESPACE`, through the downward API).
    pub fn new(container: &str, command: &str) -> Self {
        let namespace = pod_field(env::NAMESPACE, "metadata.namespace");
        JobPod {
            container: container.into(),
            command: command.into(),
            env: vec![namespace],
            mounts: vec![mount("tmp", TMP_MOUNT, false)],
            volumes: vec![Volume { name: "tmp".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }],
        }
    }

    /// The pod's own name as `DR_POD_NAME` (the restore reads its pod when it is terminated).
    pub fn pod_name(&mut self) -> &mut Self {
        self.env.push(pod_field(env::POD_NAME, "metadata.name"));
        self
    }

    pub fn env(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.env.push(EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() });
        self
    }

    /// Vault token auth: the Secret's `vault_token` key, mounted read-only, named by
    /// `DR_VAULT_TOKEN_FILE`.
    pub fn vault_token_secret(&mut self, secret: &str) -> &mut Self {
        self.env(env::VAULT_TOKEN_FILE, format!("{VAULT_TOKEN_DIR}/{VAULT_TOKEN_KEY}"));
        self.volumes.push(Volume {
            name: "vault-token".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                items: Some(vec![KeyToPath { key: VAULT_TOKEN_KEY.into(), path: VAULT_TOKEN_KEY.into(), ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        self.mounts.push(mount("vault-token", VAULT_TOKEN_DIR, true));
        self
    }

    /// The CA that signed Vault's certificate, from a ConfigMap's `key`, mounted read-only as
    /// `ca.crt` and named by `DR_VAULT_CA_BUNDLE`.
    pub fn vault_ca_config_map(&mut self, config_map: &str, key: &str) -> &mut Self {
        self.env(env::VAULT_CA_BUNDLE, format!("{VAULT_CA_MOUNT}/{CA_BUNDLE_KEY}"));
        self.volumes.push(Volume {
            name: "vault-ca".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.into(),
                items: Some(vec![KeyToPath { key: key.into(), path: CA_BUNDLE_KEY.into(), ..Default::default() }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        self.mounts.push(mount("vault-ca", VAULT_CA_MOUNT, true));
        self
    }

    /// A file profile's volume at `/mnt/dr-location` (read-only for a restore).
    pub fn location_claim(&mut self, claim: &str, read_only: bool) -> &mut Self {
        self.volumes.push(Volume {
            name: "location".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource { claim_name: claim.into(), read_only: read_only.then_some(true) }),
            ..Default::default()
        });
        self.mounts.push(mount("location", FILE_LOCATION_MOUNT, read_only));
        self
    }

    /// The pod spec: the image run as `service_account`, never restarted in place (the Job
    /// makes a new pod), hardened.
    pub fn spec(&self, image: &str, service_account: &str, pull_secrets: &[String], resources: ResourceRequirements) -> PodSpec {
        PodSpec {
            service_account_name: Some(service_account.into()),
            restart_policy: Some("Never".into()),
            image_pull_secrets: Some(pull_secrets.iter().map(|name| LocalObjectReference { name: name.clone() }).collect()),
            security_context: Some(pod_security_context()),
            containers: vec![Container {
                name: self.container.clone(),
                image: Some(image.into()),
                args: Some(vec![self.command.clone()]),
                env: Some(self.env.clone()),
                volume_mounts: Some(self.mounts.clone()),
                termination_message_policy: Some(TERMINATION_MESSAGE_POLICY.into()),
                resources: Some(resources),
                security_context: Some(container_security_context()),
                ..Default::default()
            }],
            volumes: Some(self.volumes.clone()),
            ..Default::default()
        }
    }
}
