//! What the cluster benchmarks (`dr-core/examples/bench_*.rs`) share: measuring their own process (from /proc), and serving
//! the test API server from a child process.

/// A field of /proc/self/status in MiB (VmHWM: peak RSS).
pub fn proc_status(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// User + system CPU seconds of this process (all threads), from /proc (100 ticks/s).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Prints the test API server's URL for the parent, then serves until the parent closes stdin,
/// then prints its own peak RSS in MiB.
pub async fn serve_until_stdin_closes(url: &str) {
    use std::io::Write;
    println!("{url}");
    std::io::stdout().flush().unwrap();
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    })
    .await
    .unwrap();
    // Its peak RSS, for the parent ([`ServerProcess::stop`]).
    println!("{}", proc_status("VmHWM:"));
    std::io::stdout().flush().unwrap();
}

/// Namespaces the scale benchmarks spread their objects over.
pub const NAMESPACES: usize = 100;

/// The namespace of the benchmarks' i-th object.
pub fn namespace_of(i: usize) -> String {
    format!("ns-{}", i % NAMESPACES)
}

/// The benchmarks' namespaces, as objects.
pub fn namespaces() -> impl Iterator<Item = serde_json::Value> {
    (0..NAMESPACES).map(|n| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("ns-{n}")}}))
}

/// The CRD of the benchmarks' custom resources (`Cart.shop.example.com`).
pub fn cart_crd() -> serde_json::Value {
    serde_json::json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "carts.shop.example.com"},
        "spec": {"group": "shop.example.com", "names": {"kind": "Cart", "plural": "carts"}, "scope": "Namespaced",
                 "versions": [{"name": "v1", "served": true, "storage": true}]}})
}

/// The benchmarks' i-th object, about 1 KiB as stored: a ConfigMap, a Secret and a custom
/// resource (Cart) in turn, across [`NAMESPACES`] namespaces.
pub fn object(i: usize) -> serde_json::Value {
    use serde_json::json;
    let ns = namespace_of(i);
    let filler = "x".repeat(700);
    match i % 3 {
        0 => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": ns, "labels": {"app": "shop"}}, "data": {"config": filler, "n": i.to_string()}})
        }
        1 => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("secret-{i}"), "namespace": ns}, "data": {"token": "c2VjcmV0LXZhbHVlLWZvci1iZW5jaG1hcmtz", "pad": filler}})
        }
        _ => {
            json!({"apiVersion": "shop.example.com/v1", "kind": "Cart", "metadata": {"name": format!("cart-{i}"), "namespace": ns}, "spec": {"items": [filler], "n": i}})
        }
    }
}

/// Object counts from `DR_BENCH_OBJECTS` (comma-separated), else `default`.
pub fn object_counts(default: &[usize]) -> Vec<usize> {
    match std::env::var("DR_BENCH_OBJECTS") {
        Ok(v) if !v.trim().is_empty() => v.split(',').map(|n| n.trim().replace('_', "").parse().expect("DR_BENCH_OBJECTS: comma-separated numbers")).collect(),
        _ => default.to_vec(),
    }
}

/// A benchmark's test API server, in a child process (`me` run with `args`), as a real API
/// server runs apart from the product: its memory and CPU are not the product's.
pub struct ServerProcess {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    pub url: String,
}

impl ServerProcess {
    /// Starts it and waits for its URL (it prints it once seeded).
    pub fn start(me: &std::path::Path, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(me)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the server process");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut url = String::new();
        stdout.read_line(&mut url).expect("the server's URL");
        assert!(!url.trim().is_empty(), "the server process ended before printing its URL");
        ServerProcess { child, stdout, url: url.trim().to_owned() }
    }

    /// Stops it; returns its peak RSS in MiB (the server's, for the record).
    pub fn stop(mut self) -> f64 {
        use std::io::BufRead;
        drop(self.child.stdin.take());
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        let _ = self.child.wait();
        line.trim().parse().unwrap_or(f64::NAN)
    }
}
