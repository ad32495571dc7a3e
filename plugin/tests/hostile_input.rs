//! Hostile input on the operator's own machine (issue #22), through the real `kubectl-dr`
//! binary: files that are not regular files (a FIFO, `/dev/zero`, through links or not),
//! files without end or too large, links that loop or leave the manifests directory,
//! signals during an export, Secrets of any shape in `diff`, and a stdout closed early.

use dr_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CLUSTER: &str = "7e57-hostile-input";
const PASS: &str = "correct horse battery staple";

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests")
}

fn command<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"));
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DR_LOCATION_PATH", "KUBECONFIG", "DR_CLUSTER_ID"] {
        cmd.env_remove(var);
    }
    cmd
}

/// The output of `child`, or a panic naming `what` if it has not ended within 60 s (a hang
/// is the failure several of these tests look for; the child is killed first). Its output
/// is read meanwhile, so a child that writes more than a pipe holds does not wait on us.
fn finish(child: Child, what: &str) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out,
        Err(_) => {
            Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
            let out = rx.recv().unwrap();
            panic!("{what} hung; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// Runs kubectl-dr with `stdin` written to it (then closed), bounded in time.
fn dr<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command(args).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    // The command may end before it reads stdin (it refused a file first).
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    finish(child, &format!("{:?}", args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>()))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The message of a command that failed with `code`.
fn failed(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    text(out)
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// `backup --from-manifests DIR` into the location `loc`, the passphrase on stdin.
fn backup_from(dir: &Path, loc: &Path) -> Output {
    let (dir, loc) = (dir.display().to_string(), loc.display().to_string());
    dr(&["backup", "--from-manifests", &dir, "--cluster-id", CLUSTER, "--path", &loc, "--passphrase-file", "-"], &format!("{PASS}\n"))
}

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: shop\ndata:\n  value: {value:?}\n")
}

/// The IDs of the cluster's points in `loc`, oldest first.
fn point_ids(loc: &Path) -> Vec<String> {
    let loc = loc.display().to_string();
    let out = dr(&["restore-points", "--cluster-id", CLUSTER, "--path", &loc, "--passphrase-file", "-", "-o", "json"], &format!("{PASS}\n"));
    let json: serde_json::Value = serde_json::from_str(&support::succeeded(&out)).unwrap();
    let mut ids: Vec<String> = json.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    ids.reverse();
    ids
}

/// Every file under `dir`, recursively (without following links).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_passphrase_file_is_a_bounded_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    let (m, loc_s) = (manifests().display().to_string(), loc.display().to_string());
    let backup = |file: &Path| {
        let file = file.display().to_string();
        dr(&["backup", "--from-manifests", &m, "--cluster-id", CLUSTER, "--path", &loc_s, "--passphrase-file", &file], "")
    };

    // /dev/zero, named or through a link: refused at once (before: memory grew to GBs).
    let err = failed(&backup(Path::new("/dev/zero")), 2);
    assert!(err.contains("the passphrase file /dev/zero is a character device, not a regular file"), "{err}");
    let link = dir.path().join("passphrase");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let err = failed(&backup(&link), 2);
    assert!(err.contains(&format!("{} is a character device, not a regular file", link.display())), "{err}");

    // A FIFO: refused, not waited on for a writer that never comes.
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let err = failed(&backup(&fifo), 2);
    assert!(err.contains("is a FIFO (named pipe), not a regular file"), "{err}");

    // A regular file larger than any passphrase: too large, bounded like stdin.
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 65 * 1024]).unwrap();
    let err = failed(&backup(&big), 2);
    assert!(err.contains("too large") && err.contains("64 KiB") && err.contains(&big.display().to_string()), "{err}");
    let loc_arg = ["backup", "--from-manifests", &m, "--cluster-id", CLUSTER, "--path", &loc_s, "--passphrase-file", "-"];
    let err = failed(&dr(&loc_arg, &"x".repeat(65 * 1024)), 2);
    assert!(err.contains("stdin is too large"), "{err}");
    assert!(!err.contains("xxxxxxxx"), "the secret is not echoed: {err}");

    // A passphrase file that is a link to a regular file is that file.
    let real = dir.path().join("real");
    std::fs::write(&real, format!("{PASS}\n")).unwrap();
    let good = dir.path().join("good");
    std::os::unix::fs::symlink(&real, &good).unwrap();
    let out = support::succeeded(&backup(&good));
    assert!(out.contains("9 objects"), "{out}");
}

#[test]
fn manifest_links_that_loop_or_leave_the_directory_are_skipped_and_each_object_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    std::fs::write(dir.path().join("outside.yaml"), config_map("from-outside", "x")).unwrap();
    let m = dir.path().join("manifests");
    std::fs::create_dir_all(m.join("sub")).unwrap();
    std::fs::write(m.join("a.yaml"), config_map("a", "1")).unwrap();
    std::fs::write(m.join("sub/b.yaml"), config_map("b", "2")).unwrap();
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, m.join(name)).unwrap();
    link(".", "me"); // a loop: 41 copies of every object, before
    link("..", "up"); // out of the directory: from-outside, before
    link("..", "sub/parent"); // back to the top: a loop too
    link("/dev/zero", "zero.yaml"); // a device outside the directory
    link("a.yaml", "alias.yaml"); // a second way to a.yaml
    link("sub", "sub-alias"); // a second way to sub/b.yaml
    link("missing.yaml", "dangling.yaml");

    let out = backup_from(&m, &loc);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("2 objects"), "each object once: {all}");
    let me = m.join("me").display().to_string();
    assert!(all.contains(&format!("{me}: skipped: a symbolic link to")) && all.contains("(a loop)"), "{all}");
    assert!(all.contains(&format!("{}: skipped", m.join("sub/parent").display())), "{all}");
    assert!(
        all.contains(&format!("{}: skipped: a symbolic link to {}, which is outside", m.join("up").display(), dir.path().canonicalize().unwrap().display())),
        "{all}"
    );
    assert!(all.contains(&format!("{}: skipped: a symbolic link to /dev/zero, which is outside", m.join("zero.yaml").display())), "{all}");
    assert!(all.contains("dangling.yaml: skipped"), "{all}");

    // The point holds a and b, once each, and nothing from outside.
    let export = dir.path().join("export");
    let (loc_s, export_s) = (loc.display().to_string(), export.display().to_string());
    support::succeeded(&dr(&["export", "--cluster-id", CLUSTER, "--path", &loc_s, "--output-dir", &export_s, "--passphrase-file", "-"], &format!("{PASS}\n")));
    let mut names: Vec<String> = files_under(&export.join("namespaces")).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["a.yaml", "b.yaml"]);
}

#[test]
fn a_manifest_that_is_a_fifo_or_too_large_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("a.yaml"), config_map("a", "1")).unwrap();

    // A FIFO (directly, and through a link that stays inside): refused, not waited on.
    mkfifo(&m.join("pipe.yaml"));
    let err = failed(&backup_from(&m, &loc), 2);
    assert!(err.contains(&format!("manifest {} is a FIFO (named pipe), not a regular file", m.join("pipe.yaml").display())), "{err}");
    std::fs::rename(m.join("pipe.yaml"), m.join("pipe")).unwrap();
    std::os::unix::fs::symlink("pipe", m.join("link.yaml")).unwrap();
    let err = failed(&backup_from(&m, &loc), 2);
    assert!(err.contains("link.yaml is a FIFO (named pipe), not a regular file"), "{err}");
    std::fs::remove_file(m.join("link.yaml")).unwrap();

    // 17 MiB: too large, with the file and the limit named (a FIFO not named *.yaml is no manifest).
    let big = m.join("big.yaml");
    std::fs::write(&big, config_map("big", &"x".repeat(17 << 20))).unwrap();
    let err = failed(&backup_from(&m, &loc), 2);
    assert!(err.contains(&format!("manifest {} is too large", big.display())) && err.contains("16 MiB"), "{err}");
    assert!(std::fs::read_dir(&loc).unwrap().next().is_none(), "nothing was written");
}

/// Starts an export of a point of many objects and returns once its staging directory
/// holds some of them, with the parent the staging is in.
fn export_under_way(loc: &Path, parent: &Path) -> (Child, PathBuf) {
    use std::io::Write;
    let out_dir = parent.join("out");
    let mut child =
        command(&["export", "--cluster-id", CLUSTER, "--passphrase-file", "-"]).arg("--path").arg(loc).arg("--output-dir").arg(&out_dir).spawn().unwrap();
    child.stdin.take().unwrap().write_all(PASS.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if staging(parent).is_some_and(|s| files_under(&s).len() > 10) {
            return (child, out_dir);
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!("the export never got under way: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn staging(parent: &Path) -> Option<PathBuf> {
    std::fs::read_dir(parent)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(".kubectl-dr-export-"))
}

#[test]
fn every_terminating_signal_during_an_export_removes_the_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    // A Secret first, so it is on disk in clear when the signal comes; then enough objects
    // that the export is still writing when it does.
    let canary = "plaintext-canary-0b4c1d";
    let mut entries = vec![dr_core::catalog::Entry {
        category: dr_core::catalog::Category::Secrets,
        object: serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app-0"}, "stringData": {"password": canary}}),
        source_uid: None,
    }];
    entries.extend(support::sample_entries(60_000, 64));
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let location = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc.clone() }).await.unwrap();
        support::write_point(&location, CLUSTER, &dr_core::format::crypto::Passphrase::new(PASS.into()).unwrap(), &entries).await;
    });

    for (signal, said) in [("HUP", "hung up (SIGHUP)"), ("TERM", "terminated (SIGTERM)"), ("QUIT", "quit (SIGQUIT)"), ("INT", "interrupted (Ctrl-C)")] {
        let parent = dir.path().join(format!("exports-{signal}"));
        std::fs::create_dir(&parent).unwrap();
        let (child, out_dir) = export_under_way(&loc, &parent);
        let written = files_under(&staging(&parent).unwrap());
        assert!(
            written.iter().any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains(canary))),
            "the Secret was written in clear before the signal ({} files)",
            written.len()
        );
        assert!(Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap().success());
        let out = finish(child, &format!("the export after SIG{signal}"));
        let all = text(&out);
        assert!(!out.status.success(), "SIG{signal}: the export finished before the signal; make the point larger: {all}");
        assert!(all.contains(said) && all.contains("removed"), "SIG{signal}: {all}");
        assert!(staging(&parent).is_none() && !out_dir.exists(), "SIG{signal}: {:?}", files_under(&parent));
        assert!(files_under(&parent).is_empty(), "SIG{signal}: nothing is left: {:?}", files_under(&parent));
    }
}

#[test]
fn diff_never_prints_secret_data_whatever_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    let m = dir.path().join("manifests");
    std::fs::create_dir(&m).unwrap();
    let secrets = |tag: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: as-string\n  namespace: shop\ndata: \"hunter2-string-{tag}\"\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: as-list\n  namespace: shop\ndata: [\"hunter2-list-{tag}\", {{nested: hunter2-nested-{tag}}}]\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: string-data-list\n  namespace: shop\nstringData: [\"hunter2-sd-{tag}\"]\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: odd-values\n  namespace: shop\ndata:\n  password: [\"hunter2-value-{tag}\"]\n  token: hunter2-not-base64-{tag}\n"
        )
    };
    std::fs::write(m.join("secrets.yaml"), secrets("before")).unwrap();
    support::succeeded(&backup_from(&m, &loc));
    std::fs::write(m.join("secrets.yaml"), secrets("after")).unwrap();
    support::succeeded(&backup_from(&m, &loc));
    let ids = point_ids(&loc);
    let loc_s = loc.display().to_string();
    for output in ["table", "json", "yaml"] {
        let out = dr(&["diff", &ids[0], &ids[1], "--cluster-id", CLUSTER, "--path", &loc_s, "--passphrase-file", "-", "-o", output], &format!("{PASS}\n"));
        let shown = support::succeeded(&out) + &String::from_utf8_lossy(&out.stderr);
        assert!(!shown.contains("hunter2"), "{output}: {shown}");
        for name in ["as-string", "as-list", "string-data-list", "odd-values"] {
            assert!(shown.contains(name), "{output}: every changed Secret shows as changed: {shown}");
        }
        assert!(shown.contains("hmac:"), "{output}: {shown}");
    }
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // The script is larger than a pipe holds, so the write after `head` has gone fails.
    let full = support::succeeded(&dr(&["completion", "bash"], ""));
    assert!(full.len() > 64 * 1024, "a script that fits the pipe (64 KiB) proves nothing: {} bytes", full.len());
    let bin = env!("CARGO_BIN_EXE_kubectl-dr");
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new("bash")
            .args(["-c", "set -o pipefail; \"$0\" completion \"$1\" | head -1", bin, shell])
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{shell}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
        assert!(stderr.is_empty(), "{shell}: no panic text: {stderr}");
    }

    // Through the product's own writer: a diff whose table is far larger than the pipe.
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let location = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc.clone() }).await.unwrap();
        let passphrase = dr_core::format::crypto::Passphrase::new(PASS.into()).unwrap();
        support::write_point(&location, CLUSTER, &passphrase, &support::sample_entries(3_000, 64)).await;
        let mut changed = support::sample_entries(3_000, 64);
        for e in &mut changed {
            if e.object["kind"] == "ConfigMap" {
                e.object["data"]["blob"] = serde_json::json!("changed");
            }
        }
        support::write_point(&location, CLUSTER, &passphrase, &changed).await;
    });
    let ids = point_ids(&loc);
    let script = "set -o pipefail; echo \"$2\" | \"$0\" diff \"$3\" \"$4\" --cluster-id \"$5\" --path \"$1\" --passphrase-file - | head -1";
    let out = Command::new("bash")
        .args(["-c", script, bin, &loc.display().to_string(), PASS, &ids[0], &ids[1], CLUSTER])
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("from "), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{stderr}");
}

#[test]
fn every_other_file_flag_refuses_a_fifo_or_a_device_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let fifo_s = fifo.display().to_string();
    let is_fifo = format!("{fifo_s} is a FIFO (named pipe), not a regular file");
    // A kubeconfig kube would read whole (--kubeconfig, or KUBECONFIG).
    let err = failed(&dr(&["status", "--kubeconfig", "/dev/zero"], ""), 2);
    assert!(err.contains("the kubeconfig /dev/zero is a character device, not a regular file"), "{err}");
    let mut cmd = command(&["status"]);
    cmd.env("KUBECONFIG", &fifo);
    let err = failed(&finish(cmd.spawn().unwrap(), "status with KUBECONFIG a FIFO"), 2);
    assert!(err.contains(&format!("the kubeconfig {is_fifo}")), "{err}");
    // --s3-ca-bundle, before any connection.
    let err = failed(
        &dr(
            &[
                "verify",
                "--cluster-id",
                CLUSTER,
                "--s3-bucket",
                "b",
                "--s3-endpoint",
                "https://127.0.0.1:1",
                "--s3-ca-bundle",
                &fifo_s,
                "--passphrase-file",
                "-",
            ],
            PASS,
        ),
        2,
    );
    assert!(err.contains(&format!("the CA bundle {is_fifo}")), "{err}");
    // The image archive of `images mirror`, before any registry is asked.
    let err = failed(&dr(&["images", "mirror", "--to", "127.0.0.1:1/m", "--from-archive", &fifo_s, "--plain-http"], ""), 2);
    assert!(err.contains(&is_fifo), "{err}");
    // --vault-token-file, a secret: bounded like the passphrase.
    let m = manifests().display().to_string();
    let loc = dir.path().display().to_string();
    let args = [
        "backup",
        "--from-manifests",
        &m,
        "--cluster-id",
        CLUSTER,
        "--path",
        &loc,
        "--passphrase-source",
        "vault",
        "--vault-address",
        "https://127.0.0.1:1",
        "--vault-kv-version",
        "KVv2",
        "--vault-mount-path",
        "secret",
        "--vault-secret-path",
        "k10",
        "--vault-key",
        "passphrase",
        "--vault-token-file",
        "/dev/zero",
    ];
    let err = failed(&dr(&args, ""), 2);
    assert!(err.contains("the Vault token file /dev/zero is a character device, not a regular file"), "{err}");
}
