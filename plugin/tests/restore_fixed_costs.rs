//! The fixed costs of `kubectl dr restore` (#23): what it spends besides the restore itself
//! (checking the point, installing the chart with helm, the Job starting, following it to its
//! verdict), measured on the real binary against the test API server with the kubelet
//! stand-in running the real `dr-job`, restoring a point of one ConfigMap. It prints the
//! breakdown (the README's benchmark section quotes it) and fails when the plugin's own part
//! grows far beyond its 1.5 s target (the bound is loose: the machine is shared).

use dr_test_support as support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::apiserver::ApiServer;

const NS: &str = "kasten-io";
const PASS: &str = "correct horse battery staple";

fn command(kubeconfig: &Path, args: &[&str]) -> Command {
    let path = format!("{}:{}", support::venv_bin("python").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"));
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .env("DR_HELM", support::workspace_root().join("charts/tests/helm"))
        .env_remove("DR_LOCATION_PATH")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn dr(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let mut child = command(kubeconfig, args).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    support::succeeded(&child.wait_with_output().unwrap())
}

async fn cluster(dir: &Path, name: &str) -> (ApiServer, PathBuf) {
    let api = ApiServer::start().await;
    api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    api.seed(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "dr-nfs", "namespace": NS}, "spec": {"accessModes": ["ReadWriteMany"]}}));
    let kc = dir.join(format!("{name}.kubeconfig"));
    api.write_kubeconfig(&kc, "default");
    ok_profile(&kc);
    (api, kc)
}

fn ok_profile(kc: &Path) {
    dr(kc, &["profile", "create", "offsite", "--pvc", "dr-nfs"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_fixed_costs() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("nfs");
    std::fs::create_dir_all(&loc).unwrap();
    let (source, kc) = cluster(dir.path(), "source").await;
    source.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}));
    source.seed(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}, "data": {"currency": "EUR"}}));
    let out = dr(&kc, &["enable", "--profile", "offsite", "--passphrase-file", "-"], PASS);
    let cluster_id = out.lines().find_map(|l| l.strip_prefix("Cluster ID: ")).unwrap().to_owned();
    dr(&kc, &["backup", "--local", "--path", loc.to_str().unwrap()], "");

    let (target, kc) = cluster(dir.path(), "target").await;
    // The kubelet stand-in: runs the Job as soon as helm has created it (looking every 10 ms,
    // so its own latency stays out of the figures); when it saw it and when the pod ended.
    let kubelet = {
        let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(target.client(), NS);
        let api = target.clone();
        let loc = loc.clone();
        tokio::spawn(async move {
            for _ in 0..6000 {
                if let Some(job) = jobs.get_opt("k10-restore").await.unwrap() {
                    let seen = Instant::now();
                    let job = serde_json::to_value(job).unwrap();
                    let codes = support::kubelet::run_job_with(&api, &job, &support::workspace_binary("dr-job"), &loc, &[]).await;
                    return (seen, Instant::now(), codes);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("helm never created the restore Job");
        })
    };
    // The restore, its stderr lines stamped as they come.
    let args = ["restore", "--cluster-id", cluster_id.as_str(), "--profile", "offsite", "--passphrase-file", "-", "--path", loc.to_str().unwrap()];
    let started = Instant::now();
    let mut child = command(&kc, &args).spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(PASS.as_bytes()).unwrap();
    }
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || std::io::BufReader::new(stderr).lines().map_while(Result::ok).map(|l| (Instant::now(), l)).collect::<Vec<_>>());
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let ended = Instant::now();
    let lines = lines.join().unwrap();
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    assert!(status.status.success(), "{text}");
    let (job_seen, job_done, codes) = kubelet.await.unwrap();
    assert_eq!(codes, vec![0], "{text}");
    let at = |prefix: &str| lines.iter().find(|(_, l)| l.starts_with(prefix)).map(|(t, _)| *t).unwrap_or_else(|| panic!("no line {prefix:?} in:\n{text}"));
    let secret = at("wrote k10-dr-secret");
    let installing = at("installing the dr-restore chart");
    let following = at("restore job k10-restore started");
    let s = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64();
    let phases = [
        ("checks: profile, point, passphrase, helm present", s(started, secret)),
        ("k10-dr-secret written, chart prepared", s(secret, installing)),
        ("chart install (helm upgrade --install)", s(installing, following)),
        ("Job start (created until the kubelet stand-in runs it)", s(following, job_seen).max(0.0)),
        ("the Job's pod: dr-job's own restore (not a fixed cost)", s(job_seen, job_done)),
        ("verdict to exit: the Job's end seen, report, grant ended", s(job_done, ended)),
    ];
    let total = s(started, ended);
    let own = total - phases[4].1;
    println!("| phase | seconds |\n| --- | --- |");
    for (what, secs) in phases {
        println!("| {what} | {secs:.2} |");
    }
    println!("| total | {total:.2} |\n| fixed costs (total less the Job's own restore) | {own:.2} |");
    assert!(own < 6.0, "the fixed costs of kubectl dr restore took {own:.2} s (target 1.5 s):\n{text}");
}
