//! The job pod has one definition, `dr_core::job::pod`: the DR and replication CronJobs are
//! built from it, and the restore chart's Job template spells the same pod in Go templates.
//! These tests render the chart with the Helm library for each setup and hold it to that
//! definition: the hardening, the termination message policy, every mount and volume the
//! definition has for the setup, and the variables that name them; and they check that every
//! variable the chart or a CronJob sets is one `dr-job` reads (its `--help` lists them).

use std::collections::BTreeSet;

use dr_core::dr_policy::{cronjob, replication_cronjob, EnableSettings};
use dr_core::job::pod::{container_security_context, grant_keeper, pod_security_context, JobPod, TERMINATION_MESSAGE_POLICY};
use dr_core::resources::{AzureProfileSpec, FileProfileSpec, Profile, ProfileSpec};
use dr_test_support as support;
use serde_json::{json, Value};

/// Read by the AWS SDK, not by dr-job's own settings.
const READ_BY_THE_AWS_SDK: [&str; 2] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

/// The variables `dr-job <command>` reads, from its help.
fn read_by(command: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dr-job")).args([command, "--help"]).output().unwrap();
    assert!(out.status.success(), "dr-job {command} --help: {}", String::from_utf8_lossy(&out.stderr));
    let help = String::from_utf8(out.stdout).unwrap();
    let names: BTreeSet<String> =
        help.split("[env: ").skip(1).map(|rest| rest.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect()).collect();
    assert!(names.contains("DR_NAMESPACE"), "dr-job {command} --help lists its variables: {help}");
    names.into_iter().chain(READ_BY_THE_AWS_SDK.map(String::from)).collect()
}

fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| item["name"] == name)
}

fn container_env_names(container: &Value) -> Vec<String> {
    container["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
}

/// Holds a rendered pod to the definition's pod for the same setup: everything the
/// definition has is in the chart's pod, equal.
fn assert_matches(setup: &str, chart_pod: &Value, definition: &JobPod) {
    let expected = serde_json::to_value(definition.spec("image", "account", &[], Default::default())).unwrap();
    assert_eq!(chart_pod["securityContext"], serde_json::to_value(pod_security_context()).unwrap(), "{setup}: the pod's securityContext");
    let container = &chart_pod["containers"][0];
    let want = &expected["containers"][0];
    assert_eq!(container["securityContext"], serde_json::to_value(container_security_context()).unwrap(), "{setup}: the container's securityContext");
    assert_eq!(container["terminationMessagePolicy"], TERMINATION_MESSAGE_POLICY, "{setup}");
    assert_eq!(container["args"], want["args"], "{setup}: the command");
    assert_eq!(chart_pod["restartPolicy"], expected["restartPolicy"], "{setup}");
    for env in want["env"].as_array().unwrap() {
        let name = env["name"].as_str().unwrap();
        assert_eq!(named(&container["env"], name), Some(env), "{setup}: variable {name}");
    }
    for mount in want["volumeMounts"].as_array().unwrap() {
        let name = mount["name"].as_str().unwrap();
        assert_eq!(named(&container["volumeMounts"], name), Some(mount), "{setup}: mount {name}");
    }
    for volume in expected["volumes"].as_array().unwrap() {
        let name = volume["name"].as_str().unwrap();
        assert_eq!(named(&chart_pod["volumes"], name), Some(volume), "{setup}: volume {name}");
    }
}

#[test]
fn the_charts_pod_is_the_job_pod() {
    let read = read_by("restore");
    let read_keeper = read_by("grant-keeper");
    let base = json!({"sourceClusterID": "0b6bd9b4-2c4a-4d1e-9a3e-3b7f0f6a1c2d", "profile": {"name": "offsite"}});
    let restore_pod = || {
        let mut pod = JobPod::new("restore", "restore");
        pod.pod_name();
        pod
    };
    let vault = json!({"enabled": true, "address": "https://vault:8200"});
    let setups: Vec<(&str, Value, JobPod)> = vec![
        ("an S3 profile", json!({}), restore_pod()),
        ("a file profile", json!({"fileProfile": {"claimName": "dr-nfs"}}), {
            let mut pod = restore_pod();
            pod.location_claim("dr-nfs", true);
            pod
        }),
        ("Vault token auth", json!({"vault": {"secretName": "vault-token"}}), {
            let mut pod = restore_pod();
            pod.vault_token_secret("vault-token");
            pod
        }),
        ("Vault Kubernetes auth behind a private CA", json!({"vault": {"role": "dr", "caBundle": {"configMap": "vault-ca", "key": "bundle.pem"}}}), {
            let mut pod = restore_pod();
            pod.vault_ca_config_map("vault-ca", "bundle.pem");
            pod
        }),
        (
            "AWS, FIPS and a Pushgateway",
            json!({"aws": {"credentialsSecret": "aws", "secretsManagerEndpoint": "https://sm.example"}, "fips": {"enabled": true},
                   "monitoring": {"pushgatewayURL": "http://pgw:9091"}}),
            restore_pod(),
        ),
    ];
    for (setup, extra, definition) in setups {
        let mut values = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            values[k] = v.clone();
        }
        if values.get("vault").is_some() {
            for (k, v) in vault.as_object().unwrap() {
                values["vault"][k] = v.clone();
            }
        }
        let rendered = support::render_chart("kasten-io", "k10-restore", &values).unwrap_or_else(|e| panic!("{setup}: {e}"));
        let job = rendered["manifests"].as_array().unwrap().iter().find(|m| m["kind"] == "Job").unwrap();
        let pod = &job["spec"]["template"]["spec"];
        assert_matches(setup, pod, &definition);
        // The grant keeper, a native sidecar, is the definition's too (a full restore on 1.29+).
        let keeper = serde_json::to_value(grant_keeper("image", "k10-restore", "k10-restore-kasten-io", Default::default())).unwrap();
        let sidecar = named(&pod["initContainers"], "grant-keeper").unwrap_or_else(|| panic!("{setup}: no grant-keeper sidecar"));
        for field in ["args", "restartPolicy", "env", "securityContext", "terminationMessagePolicy"] {
            assert_eq!(sidecar[field], keeper[field], "{setup}: the grant keeper's {field}");
        }
        for name in container_env_names(sidecar) {
            assert!(read_keeper.contains(&name), "{setup}: the chart sets {name}, which dr-job grant-keeper does not read");
        }
        for name in container_env_names(&pod["containers"][0]) {
            assert!(read.contains(&name), "{setup}: the chart sets {name}, which dr-job restore does not read");
        }
    }
}

/// The settings both CronJob tests enable with.
fn enable_settings() -> EnableSettings {
    EnableSettings {
        namespace: "kasten-io".into(),
        profile: "offsite".into(),
        source: dr_core::passphrase::PassphraseSource::Raw(dr_core::format::crypto::Passphrase::new("x".into()).unwrap()),
        frequency: "@hourly".into(),
        policy: Default::default(),
        image: "localhost/kubectl-dr/dr-job:test".into(),
        image_pull_secrets: vec!["regcred".into()],
        vault_address: Some("https://vault:8200".into()),
        vault_token_secret: Some("vault-token".into()),
        vault_role: None,
        vault_ca_bundle: Some("PEM".into()),
        pushgateway_url: Some("http://pgw:9091".into()),
    }
}

#[test]
fn the_cronjobs_set_only_what_dr_job_reads() {
    let settings = enable_settings();
    let profile =
        Profile::new("offsite", ProfileSpec { file: Some(FileProfileSpec { claim_name: "dr-nfs".into(), ..Default::default() }), ..Default::default() });
    for (command, cron) in [("backup", cronjob(&settings, &profile)), ("replicate", replication_cronjob(&settings, &profile, &[], "@daily"))] {
        let read = read_by(command);
        let cron = serde_json::to_value(cron).unwrap();
        let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["args"], json!([command]));
        assert_eq!(pod["securityContext"], serde_json::to_value(pod_security_context()).unwrap());
        for name in container_env_names(&pod["containers"][0]) {
            assert!(read.contains(&name), "the {command} CronJob sets {name}, which dr-job {command} does not read");
        }
    }
}

/// AKS's workload identity webhook serves only pods labelled for it: the CronJobs' pods carry
/// the label when a profile they reach has no credentials Secret, and only then.
#[test]
fn the_cronjobs_pods_carry_the_workload_identity_label_where_an_azure_profile_needs_it() {
    let settings = enable_settings();
    let azure = |secret: Option<&str>| {
        Profile::new(
            "blob",
            ProfileSpec {
                azure: Some(AzureProfileSpec {
                    account: "acct".into(),
                    container: "dr".into(),
                    credentials_secret: secret.map(str::to_owned),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    };
    let file = Profile::new("offsite", ProfileSpec { file: Some(FileProfileSpec { claim_name: "dr-nfs".into(), ..Default::default() }), ..Default::default() });
    let labelled = |cron: k8s_openapi::api::batch::v1::CronJob| {
        let cron = serde_json::to_value(cron).unwrap();
        cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    };
    assert!(labelled(cronjob(&settings, &azure(None))));
    assert!(!labelled(cronjob(&settings, &azure(Some("blob-key")))));
    assert!(!labelled(cronjob(&settings, &file)));
    assert!(labelled(replication_cronjob(&settings, &file, &[azure(None)], "@daily")));
    assert!(!labelled(replication_cronjob(&settings, &file, &[azure(Some("blob-key"))], "@daily")));
}
