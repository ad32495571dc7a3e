//! The release's binaries of another architecture, run on this machine through an emulator,
//! against the test API server: a backup of a cluster by the plugin (`backup --local`), and a
//! new cluster restored by the plugin and the restore Job, whose pod runs the release's
//! `dr-job`. `scripts/check-dist` runs it on the arm64 archives under Debian's
//! qemu-aarch64-static (ignored in the test run: no release is built yet then), naming the
//! binaries in `DR_RELEASE_BINARIES` (a directory with `kubectl-dr` and `dr-job`) and the
//! emulator in `DR_RELEASE_RUNNER`.

use dr_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::json;
use support::apiserver::ApiServer;

const NS: &str = "kasten-io";
const PASS: &str = "correct horse battery staple\n";

struct Release {
    binaries: PathBuf,
    runner: String,
}

impl Release {
    fn from_env() -> Self {
        let binaries = std::env::var_os("DR_RELEASE_BINARIES").expect("DR_RELEASE_BINARIES: the directory holding the release's kubectl-dr and dr-job").into();
        let runner = std::env::var("DR_RELEASE_RUNNER").expect("DR_RELEASE_RUNNER: the emulator that runs them (qemu-aarch64-static)");
        Release { binaries, runner }
    }

    /// `kubectl dr ARGS` by the release's plugin, through the emulator.
    fn dr(&self, kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let path = format!("{}:{}", support::venv_bin("python").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
        let mut child = Command::new(&self.runner)
            .arg(self.binaries.join("kubectl-dr"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("PATH", path)
            .env("DR_HELM", support::workspace_root().join("charts/tests/helm"))
            .env_remove("DR_LOCATION_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// A program the test kubelet can start as the pod's container: the release's dr-job
    /// through the emulator.
    fn dr_job(&self, dir: &Path) -> String {
        use std::os::unix::fs::PermissionsExt;
        let wrapper = dir.join("dr-job");
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec {} {} \"$@\"\n", self.runner, self.binaries.join("dr-job").display())).unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        wrapper.display().to_string()
    }
}

async fn cluster(dir: &Path, name: &str) -> (ApiServer, PathBuf) {
    let api = ApiServer::start().await;
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "dr-nfs", "namespace": NS}, "spec": {"accessModes": ["ReadWriteMany"]}}));
    let kc = dir.join(format!("{name}.kubeconfig"));
    api.write_kubeconfig(&kc, "default");
    (api, kc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "scripts/check-dist runs it on the release's arm64 binaries under qemu"]
async fn the_release_binaries_back_up_a_cluster_and_restore_it_onto_a_new_one() {
    let release = Release::from_env();
    let dir = tempfile::tempdir().unwrap();
    let nfs = dir.path().join("nfs");
    std::fs::create_dir_all(&nfs).unwrap();
    let (source, kc) = cluster(dir.path(), "source").await;
    source.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    source.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    support::succeeded(&release.dr(&kc, &["profile", "create", "offsite", "--pvc", "dr-nfs"], ""));
    let out = support::succeeded(&release.dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-"], PASS));
    let cluster_id = out.lines().find_map(|l| l.strip_prefix("Cluster ID: ")).unwrap().to_owned();
    support::succeeded(&release.dr(&kc, &["backup", "--local", "--path", nfs.to_str().unwrap()], ""));

    let (target, tkc) = cluster(dir.path(), "target").await;
    support::succeeded(&release.dr(&tkc, &["profile", "create", "offsite", "--pvc", "dr-nfs"], ""));
    let dr_job = release.dr_job(dir.path());
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(target.client(), NS);
    let (api, location) = (target.clone(), nfs.clone());
    let kubelet = tokio::spawn(async move {
        for _ in 0..1200 {
            if let Some(job) = jobs.get_opt("k10-restore").await.unwrap() {
                return support::kubelet::run_job(&api, &serde_json::to_value(job).unwrap(), &dr_job, &location).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("helm never created the restore Job");
    });
    let out =
        release.dr(&tkc, &["restore", "--cluster-id", &cluster_id, "--profile", "offsite", "--passphrase-file", "-", "--path", nfs.to_str().unwrap()], PASS);
    assert_eq!(kubelet.await.unwrap(), 0, "{}", String::from_utf8_lossy(&out.stderr));
    support::succeeded(&out);
    let restored = target.objects("", "configmaps").into_iter().find(|o| o["metadata"]["name"] == "settings").expect("the ConfigMap restored");
    assert_eq!(restored["data"]["currency"], "EUR");
    assert!(target.objects("", "configmaps").iter().any(|o| o["metadata"]["name"] == "k10-dr-remove-to-get-ownership"), "the ownership ConfigMap");
}
