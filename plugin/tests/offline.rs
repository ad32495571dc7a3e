//! The README's loop through the real `kubectl-dr` binary: make a point from manifests,
//! list it, verify it, export it — on a directory and on S3 (moto) with Object Lock and
//! PutObject-only credentials for the backup.

use dr_test_support as support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

const CLUSTER: &str = "7d3f0c1e-5a2b-4c9d-8e1f-0a2b3c4d5e6f";

fn manifests() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/manifests").display().to_string()
}

/// Owned arguments from a mix of literals and computed strings.
fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Runs kubectl-dr with the passphrase on stdin and a clean AWS environment.
fn dr<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(String, String)], passphrase: &str) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"));
    cmd.args(args).args(["--passphrase-file", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "DR_LOCATION_PATH", "KUBECONFIG"] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(format!("{passphrase}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

use support::succeeded as ok;

fn failed(out: &Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "stdout: {}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

const PASS: &str = "correct horse battery staple";

/// Runs `cmd` on the location directory `loc` for cluster `CLUSTER`, with `pass` on stdin.
fn on_directory(loc: &str, cmd: &[&str], pass: &str) -> Output {
    let mut a = argv(cmd);
    a.extend(argv(&["--cluster-id", CLUSTER, "--path", loc]));
    dr(&a, &[], pass)
}

#[test]
fn the_offline_loop_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    let loc_s = loc.display().to_string();
    let run = |cmd: &[&str], pass: &str| on_directory(&loc_s, cmd, pass);
    let m = manifests();

    let out = ok(&run(&["backup", "--from-manifests", &m], PASS));
    assert!(out.contains("9 objects"), "{out}");
    let out = ok(&run(&["backup", "--mode", "quick", "--from-manifests", &m], PASS));
    assert!(out.contains("3 objects"), "{out}");

    let table = ok(&run(&["restore-points"], PASS));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATUS") && lines[0].contains("OBJECTS"));
    assert!(lines[1].contains("quick") && lines[1].contains("complete"), "newest first: {table}");
    assert!(lines[2].contains("full") && lines[2].contains(" 9 "), "{table}");

    let json: serde_json::Value = serde_json::from_str(&ok(&run(&["restore-points", "-o", "json"], PASS))).unwrap();
    let full_id = json[1]["id"].as_str().unwrap().to_owned();
    assert_eq!(json[1]["objects"], 9);
    let yaml = ok(&run(&["restore-points", "-o", "yaml"], PASS));
    assert!(yaml.contains(&format!("id: {full_id}")), "{yaml}");

    let out = ok(&run(&["verify"], PASS));
    assert_eq!(out.matches("OK ").count(), 2, "{out}");

    let export = dir.path().join("export");
    let export_s = export.display().to_string();
    ok(&run(&["export", "--point", &full_id, "--output-dir", &export_s], PASS));
    let web = std::fs::read_to_string(export.join("namespaces/shop/deployment.apps/web.yaml")).unwrap();
    assert!(web.contains("image: nginx:1.27") && web.contains("kind: Deployment"), "{web}");
    assert!(export.join("cluster/customresourcedefinition.apiextensions.k8s.io/carts.shop.example.com.yaml").exists());
    assert!(export.join("namespaces/kasten-io/profile.dr.kubectl-dr.io/offsite.yaml").exists());
    // Exports hold Secrets in clear: files 0600, directories 0700 (they were world-readable).
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&export), 0o700);
        assert_eq!(mode(&export.join("namespaces/shop")), 0o700);
        assert_eq!(mode(&export.join("namespaces/shop/deployment.apps/web.yaml")), 0o600);
        assert_eq!(mode(&export.join("restore-point.json")), 0o600);
    }

    // Bad input: wrong passphrase (its own exit status, 3), unknown cluster, missing
    // directory, export over a directory, a time that is not RFC 3339 (2).
    let err = failed(&run(&["verify"], "not the passphrase"), 3);
    assert!(err.contains("wrong passphrase") && !err.contains("not the passphrase"), "{err}");
    // Said once: the message does not repeat its cause.
    assert_eq!(err.matches("wrong passphrase").count(), 1, "{err}");
    let err = failed(&dr(&["restore-points", "--cluster-id", "other-cluster", "--path", &loc_s], &[], PASS), 2);
    assert!(err.contains("no restore points for cluster ID other-cluster"), "{err}");
    let err = failed(&dr(&["verify", "--cluster-id", CLUSTER, "--path", "/nonexistent/nfs"], &[], PASS), 2);
    assert!(err.contains("/nonexistent/nfs") && err.contains("does not exist"), "{err}");
    let err = failed(&run(&["export", "--output-dir", &export_s], PASS), 2);
    assert!(err.contains("already exists"), "{err}");
    let err = failed(&run(&["restore-points", "--point-in-time", "yesterday"], PASS), 2);
    assert!(err.contains("RFC 3339"), "{err}");
    // Flags clap parses, before anything is read: a restore's timeout is whole minutes (the
    // chart's restore.timeout), and restore's --point-in-time goes through the chart's values.
    let err = failed(&dr(&["restore", "--cluster-id", CLUSTER, "--profile", "p", "--timeout", "90s"], &[], PASS), 2);
    assert!(err.contains("whole number of minutes"), "{err}");
    let err = failed(&dr(&["restore", "--cluster-id", CLUSTER, "--profile", "p", "--point-in-time", "yesterday"], &[], PASS), 2);
    assert!(err.contains("pointInTime (--point-in-time)") && err.contains("RFC 3339"), "{err}");

    // A damaged point makes verify fail (exit 4, damaged point) and name the point, while the other passes.
    let archive = loc.join(CLUSTER).join("restore-points").join(&full_id).join("archive.kdr");
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() - 20;
    bytes[mid] ^= 1;
    std::fs::write(&archive, bytes).unwrap();
    let out = failed(&run(&["verify"], PASS), 4);
    assert!(out.contains(&format!("FAILED     {full_id}")) && out.contains("OK "), "{out}");

    // Reads are bounded: a manifest that is a link to /dev/zero, or a FIFO, is refused as
    // altered (before: out of memory, or a hang), and a point whose archive is gone after its
    // manifest was written is damaged (4), not an unfinished backup.
    let quick_id = lines[1].split_whitespace().next().unwrap().to_owned();
    let quick_dir = loc.join(CLUSTER).join("restore-points").join(&quick_id);
    let manifest = quick_dir.join("manifest.kdr");
    let saved = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &manifest).unwrap();
    let out = failed(&run(&["verify", "--point", &quick_id], PASS), 4);
    assert!(out.contains(&format!("TAMPERED   {quick_id}")) && out.contains("manifest.kdr is a symbolic link"), "{out}");
    std::fs::remove_file(&manifest).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&manifest).status().unwrap().success());
    let out = failed(&run(&["verify", "--point", &quick_id], PASS), 4);
    assert!(out.contains(&format!("TAMPERED   {quick_id}")) && out.contains("manifest.kdr is a FIFO"), "{out}");
    std::fs::remove_file(&manifest).unwrap();
    std::fs::write(&manifest, saved).unwrap();
    std::fs::remove_file(quick_dir.join("archive.kdr")).unwrap();
    let out = failed(&run(&["verify", "--point", &quick_id], PASS), 4);
    assert!(out.contains("archive is missing"), "{out}");
}

/// What an attacker with the backup's write credentials plants beside genuine points, as the
/// operator's commands show it: a forged point (no passphrase needed) is listed `forged` and
/// never chosen, a point directory made a link is `tampered`, and the genuine points stay
/// listed, verified, exported and restorable by ID.
#[test]
fn planted_points_are_listed_as_what_they_are_and_never_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    let loc_s = loc.display().to_string();
    let run = |cmd: &[&str], pass: &str| on_directory(&loc_s, cmd, pass);
    ok(&run(&["backup", "--from-manifests", &manifests()], PASS));
    let json: serde_json::Value = serde_json::from_str(&ok(&run(&["restore-points", "-o", "json"], PASS))).unwrap();
    let genuine = json[0]["id"].as_str().unwrap().to_owned();
    // A forgery at the genuine point's millisecond, one newer, and a second genuine point
    // whose directory is then replaced by a link to a copy of it.
    let (stamp, _) = genuine.split_once('-').unwrap();
    let twin = format!("{stamp}-ffffffff");
    support::plant_forged_point(&loc, CLUSTER, dr_core::format::VERSION, &twin);
    let newer = dr_core::point::new_point_id(time::OffsetDateTime::now_utc() + time::Duration::seconds(1));
    support::plant_forged_point(&loc, CLUSTER, dr_core::format::VERSION, &newer);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(&run(&["backup", "--from-manifests", &manifests()], PASS));
    let json: serde_json::Value = serde_json::from_str(&ok(&run(&["restore-points", "-o", "json"], PASS))).unwrap();
    let status = |id: &str| json.as_array().unwrap().iter().find(|r| r["id"] == id).map(|r| r["status"].as_str().unwrap().to_owned());
    let linked = json.as_array().unwrap().iter().find(|r| r["status"] == "complete" && r["id"] != genuine.as_str()).unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(status(&twin).as_deref(), Some("forged"), "{json}");
    assert_eq!(status(&newer).as_deref(), Some("forged"), "{json}");
    assert_eq!(status(&genuine).as_deref(), Some("complete"), "{json}");
    let points = loc.join(CLUSTER).join("restore-points");
    let copy = dir.path().join("copy");
    std::fs::rename(points.join(&linked), &copy).unwrap();
    std::os::unix::fs::symlink(&copy, points.join(&linked)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(&run(&["restore-points", "-o", "json"], PASS))).unwrap();
    let row = json.as_array().unwrap().iter().find(|r| r["id"] == linked.as_str()).unwrap();
    assert_eq!(row["status"], "tampered", "{json}");
    assert!(row["error"].as_str().unwrap().contains("symbolic link"), "{row}");
    // verify fails (damaged point, 4) and names each, while the genuine point verifies.
    let out = failed(&run(&["verify"], PASS), 4);
    assert!(out.contains(&format!("OK         {genuine}")), "{out}");
    assert!(out.contains(&format!("FAILED     {twin}")) && out.contains(&format!("FAILED     {newer}")), "{out}");
    assert!(out.contains(&format!("TAMPERED   {linked}")), "{out}");
    // A wrong passphrase is still wrong (no point opens), whatever was planted.
    let err = failed(&run(&["verify"], "not the passphrase"), 3);
    assert!(err.contains("wrong passphrase"), "{err}");
    // The newest point that authenticates is exported: the genuine one.
    let export = dir.path().join("export");
    ok(&run(&["export", "--output-dir", &export.display().to_string()], PASS));
    let exported: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(export.join("restore-point.json")).unwrap()).unwrap();
    assert_eq!(exported["pointId"], genuine.as_str(), "{exported}");
}

#[test]
fn the_loop_on_s3_with_object_lock_and_write_only_credentials() {
    let s3 = support::moto_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "7".into())]);
    support::moto_setup(&s3, &["bucket", "dr-offsite", "lock"], None);
    let users = support::moto_setup(&s3, &["users", "dr-offsite"], None);
    let creds = |u: &str| {
        vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), users[u]["access_key_id"].as_str().unwrap().to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), users[u]["secret_access_key"].as_str().unwrap().to_owned()),
        ]
    };
    let (writer, reader) = (creds("writer"), creds("reader"));
    let run = |cmd: &[&str], env: &[(String, String)]| {
        let mut a = argv(cmd);
        a.extend(argv(&[
            "--cluster-id",
            CLUSTER,
            "--s3-bucket",
            "dr-offsite",
            "--s3-prefix",
            "k10",
            "--s3-endpoint",
            &s3.url,
            "--s3-path-style",
            "--s3-region",
            "us-east-1",
        ]));
        dr(&a, env, PASS)
    };

    let out = ok(&run(&["backup", "--from-manifests", &manifests(), "--immutable-days", "1"], &writer));
    assert!(out.contains("9 objects"), "{out}");
    // The writer cannot list what it wrote.
    let err = failed(&run(&["restore-points"], &writer), 2);
    assert!(err.contains("access denied") && err.contains("s3:ListBucket"), "{err}");

    let table = ok(&run(&["restore-points"], &reader));
    assert!(table.lines().nth(1).is_some_and(|l| l.contains("complete") && l.contains("full")), "{table}");
    assert!(ok(&run(&["verify"], &reader)).contains("OK "));
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("out").display().to_string();
    ok(&run(&["export", "--output-dir", &export], &reader));
    assert!(Path::new(&export).join("namespaces/shop/configmap/shop-settings.yaml").exists());

    // The writer puts junk over the point's manifest (a plain PutObject, no If-None-Match).
    let listed: serde_json::Value = serde_json::from_str(&ok(&run(&["restore-points", "-o", "json"], &reader))).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let key = format!("k10/{}", dr_core::point::object_key(CLUSTER, &id, dr_core::point::MANIFEST_OBJECT));
    let w = &users["writer"];
    support::moto_setup(
        &s3,
        &["put", "dr-offsite", &key, w["access_key_id"].as_str().unwrap(), w["secret_access_key"].as_str().unwrap()],
        Some("KDR-RP\r\njunk"),
    );
    // Listed and verified as tampered, naming the file and the version written over it…
    let table = ok(&run(&["restore-points"], &reader));
    assert!(table.contains("tampered") && table.contains("manifest.kdr has a later version"), "{table}");
    let verify = run(&["verify"], &reader);
    let said = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert_eq!(verify.status.code(), Some(4), "{said}");
    assert!(said.contains(&format!("TAMPERED   {id}  9 objects as written; manifest.kdr has a later version")), "{said}");
    // …and still exported as kubectl-dr wrote it.
    std::fs::remove_dir_all(&export).unwrap();
    ok(&run(&["export", "--output-dir", &export, "--point", &id], &reader));
    assert!(Path::new(&export).join("namespaces/shop/configmap/shop-settings.yaml").exists());
}

#[test]
fn an_interrupted_export_removes_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    let cluster = "7e57-interrupted-export";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let location = dr_core::location::Location::connect(&dr_core::location::LocationConfig::File { path: loc.clone() }).await.unwrap();
        support::write_point(&location, cluster, &dr_core::format::crypto::Passphrase::new(PASS.into()).unwrap(), &support::sample_entries(60_000, 64)).await;
    });
    let out_dir = dir.path().join("exports").join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-dr"))
        .args(["export", "--cluster-id", cluster, "--path"])
        .arg(&loc)
        .arg("--output-dir")
        .arg(&out_dir)
        .args(["--passphrase-file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(PASS.as_bytes()).unwrap();
    }
    // Wait until the staging directory holds some of the point's objects (Secrets in clear).
    let parent = dir.path().join("exports");
    let staging = || {
        std::fs::read_dir(&parent)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(".kubectl-dr-export-"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if staging().is_some_and(|s| std::fs::read_dir(s).map(|d| d.count() > 0).unwrap_or(false)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the export never started writing");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the export finished before the signal; make the point larger: {stderr}");
    assert!(stderr.contains("terminated (SIGTERM)") && stderr.contains("removed"), "{stderr}");
    assert!(staging().is_none(), "the staging directory with the plaintext is gone");
    assert!(!out_dir.exists());
}

#[test]
fn a_forged_point_is_reported_as_such_and_the_genuine_ones_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().join("location");
    std::fs::create_dir(&loc).unwrap();
    let loc_s = loc.display().to_string();
    let run = |cmd: &[&str], pass: &str| on_directory(&loc_s, cmd, pass);
    ok(&run(&["backup", "--from-manifests", &manifests()], PASS));
    // A newer point under another key, as anyone who can write to the location can add.
    ok(&run(&["backup", "--from-manifests", &manifests()], "the attacker's own key"));
    // Before: "wrong passphrase" at the forged point, and nothing verified (exit 3).
    let out = failed(&run(&["verify"], PASS), 4);
    assert!(out.contains("OK ") && out.contains("does not open with this passphrase, but point"), "{out}");
    // With a passphrase that opens nothing, it is the passphrase.
    let out = failed(&run(&["verify"], "neither"), 3);
    assert_eq!(out.matches("wrong passphrase").count(), 1, "{out}");
}

#[tokio::test]
async fn a_plain_http_vault_address_draws_a_warning_that_holds_no_secret() {
    let vault = support::openbao();
    support::bao(&vault, reqwest::Method::POST, "secret/data/k10", Some(serde_json::json!({"data": {"passphrase": PASS}}))).await;
    assert!(vault.url.starts_with("http://"), "{}", vault.url);
    let dir = tempfile::tempdir().unwrap();
    let loc = dir.path().display().to_string();
    let args = argv(&[
        "backup",
        "--from-manifests",
        &manifests(),
        "--cluster-id",
        CLUSTER,
        "--path",
        &loc,
        "--passphrase-source",
        "vault",
        "--vault-address",
        &vault.url,
        "--vault-kv-version",
        "KVv2",
        "--vault-mount-path",
        "secret",
        "--vault-secret-path",
        "k10",
        "--vault-key",
        "passphrase",
    ]);
    let out = dr(&args, &[("VAULT_TOKEN".into(), support::BAO_ROOT_TOKEN.into())], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("plain HTTP") && stderr.contains("use https://"), "{stderr}");
    assert!(!stderr.contains(PASS) && !stderr.contains(support::BAO_ROOT_TOKEN), "{stderr}");
}
