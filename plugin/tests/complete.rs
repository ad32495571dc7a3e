//! `kubectl dr <TAB>`: the completion protocol driven with the real binary, as kubectl drives
//! it (kubectl runs `kubectl_complete-dr WORDS... CURRENT` from the PATH and reads one
//! candidate per line, `value<TAB>description`, then `:<cobra directive>`), and through the
//! real kubectl. Profile names come from the test API server; cluster IDs and point IDs from a
//! file location that real backups wrote.

use dr_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::apiserver::ApiServer;

const NS: &str = "kasten-io";
const PASS: &str = "correct horse battery staple";
const CLUSTER: &str = "7d3f0c1e-5a2b-4c9d-8e1f-0a2b3c4d5e6f";

/// A directory holding what a user's PATH would: `kubectl-dr` (a link to the binary under
/// test) and the `kubectl_complete-dr` script the release archive ships.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-dr"), dir.path().join("kubectl-dr")).unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("kubectl_complete-dr"), dir.path().join("kubectl_complete-dr")).unwrap();
    dir
}

/// Runs `program args` with a clean environment for the plugin: no kubeconfig, location or
/// namespace unless `env` gives one.
fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    for var in ["KUBECONFIG", "DR_LOCATION_PATH", "DR_CLUSTER_ID", "DR_NAMESPACE"] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `kubectl-dr __complete WORDS...`: stdout, after checking it exited 0 and printed nothing on
/// stderr (kubectl passes the completer's stderr through to the terminal).
fn complete(words: &[&str], env: &[(&str, &str)]) -> String {
    let mut args = vec!["__complete"];
    args.extend_from_slice(words);
    quiet(&run(Path::new(env!("CARGO_BIN_EXE_kubectl-dr")), &args, env))
}

fn quiet(out: &Output) -> String {
    let stdout = support::succeeded(out);
    assert!(out.stderr.is_empty(), "nothing on stderr: {}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// The candidates' values, and the directive.
fn values(answer: &str) -> (Vec<String>, String) {
    let mut lines: Vec<&str> = answer.lines().collect();
    let directive = lines.pop().expect("a directive line");
    assert!(directive.starts_with(':'), "the last line is the directive: {answer}");
    (lines.iter().map(|l| l.split('\t').next().unwrap().to_owned()).collect(), directive.to_owned())
}

#[test]
fn subcommands_flags_and_fixed_values_in_cobras_format() {
    // The first word: every subcommand, with its description, and no file names.
    let answer = complete(&[""], &[]);
    let (names, directive) = values(&answer);
    assert_eq!(
        names,
        [
            "profile",
            "enable",
            "status",
            "disable",
            "prune",
            "backup",
            "restore-points",
            "verify",
            "export",
            "replicate",
            "diff",
            "drill",
            "restore",
            "take-ownership",
            "images",
            "version",
            "completion",
            "help"
        ]
    );
    assert_eq!(directive, ":4");
    assert!(answer.lines().any(|l| l == "profile\tManage location profiles (where restore points go)"), "{answer}");

    // What is typed narrows them.
    assert_eq!(values(&complete(&["rest"], &[])).0, ["restore-points", "restore"]);
    assert_eq!(
        complete(&["images", "m"], &[]),
        "mirror\tCopy the job image and the dr-restore chart into a private registry (REGISTRY[:PORT][/PATH]), byte for byte, so their digests stay the same\n:4\n"
    );

    // Flags of the subcommand and the global ones; one already given is not offered again.
    let (flags, directive) = values(&complete(&["restore", "--profile", "p", "--s"], &[]));
    assert_eq!(flags, ["--skip-resource", "--selector", "--storage-class-mapping"]);
    assert_eq!(directive, ":4");
    assert_eq!(complete(&["restore", "--pro"], &[]), "--profile\tThe location profile (on this cluster) the source cluster's DR policy wrote to\n:4\n");
    assert_eq!(complete(&["restore", "--profile", "p", "--pro"], &[]), ":4\n");
    // One that may be given again is offered again.
    assert_eq!(values(&complete(&["restore", "--image-pull-secret", "a", "--image-p"], &[])).0, ["--image-pull-secret"]);

    // Fixed values, after the flag or after `=`.
    assert_eq!(complete(&["restore-points", "--passphrase-source", ""], &[]), "raw\nvault\naws\n:4\n");
    assert_eq!(complete(&["restore", "--existing=u"], &[]), "--existing=update\n:4\n");
    assert_eq!(complete(&["-o", "j"], &[]), ":4\n", "-o belongs to the subcommands, not to kubectl dr itself");
    assert_eq!(complete(&["status", "-o", "j"], &[]), "json\n:4\n");

    // A file is the shell's to complete (directive 0); a directory, directories only (16);
    // something only the user knows, nothing (4).
    assert_eq!(complete(&["verify", "--passphrase-file", ""], &[]), ":0\n");
    assert_eq!(complete(&["images", "package-chart", "--destination", ""], &[]), ":16\n");
    assert_eq!(complete(&["restore", "--cluster-id", ""], &[]), ":4\n");
    assert_eq!(complete(&["images", "mirror", "--to", ""], &[]), ":4\n");
}

#[test]
fn kubectl_completes_kubectl_dr_through_the_shipped_completer() {
    let dir = plugin_dir();
    // The completer as kubectl runs it: the script from the archive, words without __complete.
    let script = dir.path().join("kubectl_complete-dr");
    assert_eq!(quiet(&run(&script, &["restore-points", "--passphrase-source", "v"], &[])), "vault\n:4\n");
    // The binary itself under that name (a link, as the README has krew users make).
    let link = dir.path().join("link");
    std::fs::create_dir(&link).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-dr"), link.join("kubectl_complete-dr")).unwrap();
    assert_eq!(quiet(&run(&link.join("kubectl_complete-dr"), &["completion", "z"], &[])), "zsh\n:4\n");

    // The real kubectl, finding the plugin and its completer on the PATH.
    let kubectl = PathBuf::from(std::env::var("DR_TEST_KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into()));
    assert!(kubectl.exists(), "{} not found: install kubectl (1.26 or later), or set DR_TEST_KUBECTL", kubectl.display());
    let path = format!("{}:/usr/bin:/bin", dir.path().display());
    let out = run(&kubectl, &["__complete", "dr", "images", ""], &[("PATH", &path)]);
    let stdout = support::succeeded(&out);
    let (names, directive) = values(&stdout);
    assert_eq!((names, directive.as_str()), (vec!["mirror".to_owned(), "package-chart".into(), "help".into()], ":4"), "{stdout}");
    let out = run(&kubectl, &["__complete", "dr", "restore", "--existing", ""], &[("PATH", &path)]);
    assert_eq!(support::succeeded(&out), "skip\nupdate\n:4\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_names_come_from_the_dr_namespace_and_a_slow_cluster_gives_none_quietly() {
    let api = ApiServer::start().await;
    api.install_dr_crds();
    for ns in [NS, "elsewhere"] {
        api.seed(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    let profile = |name: &str, ns: &str, spec: Value| {
        api.seed(json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": name, "namespace": ns}, "spec": spec}));
    };
    profile("primary", NS, json!({"s3": {"bucket": "dr-bucket", "prefix": "prod"}}));
    profile("offsite", NS, json!({"file": {"claimName": "dr-nfs"}}));
    profile("other", "elsewhere", json!({"file": {"claimName": "x"}}));
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc, "default");
    let kc_s = kc.display().to_string();
    let env = [("KUBECONFIG", kc_s.as_str())];

    assert_eq!(complete(&["restore", "--profile", ""], &env), "offsite\tpvc/dr-nfs\nprimary\ts3://dr-bucket/prod\n:4\n");
    assert_eq!(complete(&["profile", "delete", "p"], &env), "primary\ts3://dr-bucket/prod\n:4\n");
    assert_eq!(complete(&["replicate", "--to=o"], &env), "--to=offsite\tpvc/dr-nfs\n:4\n");
    // The DR namespace and the kubeconfig as the line gives them.
    assert_eq!(complete(&["-n", "elsewhere", "enable", "--profile", ""], &env), "other\tpvc/x\n:4\n");
    assert_eq!(complete(&["--kubeconfig", &kc_s, "drill", "--profile", "o"], &[]), "offsite\tpvc/dr-nfs\n:4\n");
    assert_eq!(values(&complete(&["status", "-n", ""], &env)).0, ["default", "elsewhere", NS, "kube-node-lease", "kube-public", "kube-system"]);
    assert_eq!(complete(&["--context", ""], &env), "test\tcluster test\n:4\n");

    // A cluster that answers slowly, or not at all: no candidates within the time limit, and
    // nothing on the terminal.
    api.set_latency(Duration::from_secs(20));
    let started = Instant::now();
    assert_eq!(complete(&["restore", "--profile", ""], &env), ":4\n");
    assert!(started.elapsed() < Duration::from_secs(8), "gave up after {:?}", started.elapsed());
    let closed = dir.path().join("closed");
    std::fs::write(&closed, kc_contents_for(&format!("http://127.0.0.1:{}", support::free_port()))).unwrap();
    assert_eq!(complete(&["restore", "--profile", ""], &[("KUBECONFIG", closed.to_str().unwrap())]), ":4\n");
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not: [a kubeconfig").unwrap();
    assert_eq!(complete(&["--kubeconfig", junk.to_str().unwrap(), "restore", "--profile", ""], &[]), ":4\n");
    assert_eq!(complete(&["--kubeconfig", junk.to_str().unwrap(), "--context", ""], &[]), ":4\n");
}

fn kc_contents_for(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
    )
}

#[test]
fn cluster_ids_and_points_come_from_a_file_location_newest_first() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    let loc_s = loc.display().to_string();
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests").display().to_string();
    let dr = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"))
            .args(args)
            .args(["--cluster-id", CLUSTER, "--path", &loc_s, "--passphrase-file", "-"])
            .env_remove("DR_LOCATION_PATH")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{PASS}\n").as_bytes()).unwrap();
        support::succeeded(&child.wait_with_output().unwrap())
    };
    dr(&["backup", "--from-manifests", &manifests]);
    dr(&["backup", "--from-manifests", &manifests]);
    // Beside them: a point whose backup did not finish (no manifest), and what is no cluster.
    let incomplete = loc.join(CLUSTER).join("restore-points/20200101T000000.000Z-0a1b2c3d");
    std::fs::create_dir_all(&incomplete).unwrap();
    std::fs::write(incomplete.join("archive.kdr"), b"partial").unwrap();
    std::fs::create_dir_all(loc.join("lost+found")).unwrap();
    std::fs::write(loc.join("notes.txt"), b"").unwrap();

    let listed: Value = serde_json::from_str(&dr(&["restore-points", "-o", "json"])).unwrap();
    let complete_points: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "complete")
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r["time"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(complete_points.len(), 2, "{listed}");
    assert!(complete_points[0].0 > complete_points[1].0, "restore-points lists newest first: {complete_points:?}");

    assert_eq!(complete(&["verify", "--path", &loc_s, "--cluster-id", ""], &[]), format!("{CLUSTER}\t2 restore point(s)\n:4\n"));
    // Newest first, kept in that order (4 | 32), each with its time.
    let expected: String = complete_points.iter().map(|(id, time)| format!("{id}\t{time}\n")).collect::<String>() + ":36\n";
    assert_eq!(complete(&["export", "--path", &loc_s, "--cluster-id", CLUSTER, "--point", ""], &[]), expected);
    // From the environment, as the commands read them; and diff's positional points.
    let env = [("DR_LOCATION_PATH", loc_s.as_str()), ("DR_CLUSTER_ID", CLUSTER)];
    assert_eq!(complete(&["diff", ""], &env), expected);
    assert_eq!(complete(&["diff", &complete_points[1].0, ""], &env), expected);
    // Without a location, or for a cluster with no points: nothing.
    assert_eq!(complete(&["verify", "--cluster-id", CLUSTER, "--point", ""], &[]), ":36\n");
    assert_eq!(complete(&["verify", "--path", &loc_s, "--cluster-id", "other", "--point", ""], &[]), ":36\n");
}
