//! A stand-in for the kubelet and the Job controller, for the test API server (which runs no
//! controllers): it turns a Job's pod template into a process with exactly that pod's
//! environment (env values, the downward-API namespace, secretKeyRefs), volumes (a PVC is
//! the location directory, Secret and ConfigMap volumes and projected service-account tokens
//! are files) and
//! service account (a token the test API server accepts), and reports the result back the way
//! a kubelet and the Job controller do: a Pod owned by its Job, with the container's
//! termination message as a kubelet keeps it (its last 4 KiB, or the log's tail when empty
//! under `FallbackToLogsOnError`), and the Job's status. It keeps what the restore's grant
//! depends on (`run_job_with`): `backoffLimit`, the `podFailurePolicy`'s `FailJob` exit codes,
//! `activeDeadlineSeconds` (SIGTERM, then SIGKILL after the grace period), a pod killed with
//! SIGKILL (`OOMKilled`), and native sidecars (started first, stopped after the main
//! container has exited).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::apiserver::ApiServer;

/// A Secret value, decoded as the API machinery decodes it (k8s-openapi's `ByteString`).
pub fn unb64(s: &str) -> String {
    let bytes: k8s_openapi::ByteString = serde_json::from_value(Value::String(s.into())).unwrap();
    String::from_utf8(bytes.0).unwrap()
}

/// Whether `m` (a manifest) exists on `api`.
pub fn exists(api: &ApiServer, m: &Value) -> bool {
    let group = m["apiVersion"].as_str().unwrap().split_once('/').map(|(g, _)| g).unwrap_or("");
    let plural = format!("{}s", m["kind"].as_str().unwrap().to_lowercase());
    api.objects(group, &plural).iter().any(|o| o["metadata"]["name"] == m["metadata"]["name"])
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// What a kubelet keeps of a container's termination message file.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;
/// What `FallbackToLogsOnError` takes from the log instead: its last 80 lines, at most 2 KiB.
const FALLBACK_LOG_LINES: usize = 80;
const FALLBACK_LOG_LIMIT: usize = 2048;

/// The message a kubelet reports for a container that ended with `code`: the last 4096
/// bytes of its termination message file (the kubelet reads at most that much, from the
/// end); when that is empty, the container failed and its policy is
/// `FallbackToLogsOnError`, the tail of its log.
pub fn termination_message(file: &Path, code: i32, fallback_to_logs: bool, log: &str) -> String {
    let bytes = std::fs::read(file).unwrap_or_default();
    let kept = &bytes[bytes.len().saturating_sub(TERMINATION_MESSAGE_LIMIT)..];
    if !kept.is_empty() || code == 0 || !fallback_to_logs {
        return String::from_utf8_lossy(kept).into_owned();
    }
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(FALLBACK_LOG_LINES)..].join("\n");
    let start = tail.len().saturating_sub(FALLBACK_LOG_LIMIT);
    String::from_utf8_lossy(&tail.as_bytes()[start..]).into_owned()
}

/// A pod, ready to run as a process.
pub struct Pod {
    /// The container's args (`restore`, `backup`).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub kubeconfig: PathBuf,
    pub termination: PathBuf,
}

impl Pod {
    pub fn spawn(&self, binary: &str) -> std::process::Child {
        self.command(binary).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    }

    /// A sidecar's process: its output goes to `log` (a container's own log; the pod's log the
    /// tests follow is its main container's).
    pub fn spawn_logged(&self, binary: &str, log: &Path) -> std::process::Child {
        let file = std::fs::File::create(log).unwrap();
        self.command(binary).stdout(Stdio::from(file.try_clone().unwrap())).stderr(Stdio::from(file)).spawn().unwrap()
    }

    /// The same pod's environment and files, for another command.
    fn clone_paths(&self) -> Pod {
        Pod { args: self.args.clone(), env: self.env.clone(), kubeconfig: self.kubeconfig.clone(), termination: self.termination.clone() }
    }

    fn command(&self, binary: &str) -> Command {
        let mut command = Command::new(binary);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("DR_TERMINATION_LOG", &self.termination)
            .env("AWS_EC2_METADATA_DISABLED", "true");
        command
    }
}

/// The process a kubelet would run for `job`'s pod: env resolved, volumes materialised under
/// `root` (the PVC claim is `location`), a token for the pod's service account. The pod's
/// name (`metadata.name` through the downward API) is `<job>-manual`: no Pod object stands
/// for it.
pub fn pod_for_job(api: &ApiServer, job: &Value, location: &Path, root: &Path) -> Pod {
    let name = format!("{}-manual", job["metadata"]["name"].as_str().unwrap());
    pod_for_container(api, job, &job["spec"]["template"]["spec"]["containers"][0], &name, location, root)
}

/// [`pod_for_job`] for one `container` of the Job's pod template (a main container or an init
/// container) in the pod named `pod_name`.
pub fn pod_for_container(api: &ApiServer, job: &Value, container: &Value, pod_name: &str, location: &Path, root: &Path) -> Pod {
    let namespace = job["metadata"]["namespace"].as_str().unwrap().to_owned();
    let pod = &job["spec"]["template"]["spec"];
    let args: Vec<String> = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    let sa = pod["serviceAccountName"].as_str().unwrap();
    let token = api.issue_token(&namespace, sa);
    // Volumes.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let mount_path = m["mountPath"].as_str().unwrap();
        let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == m["name"]).unwrap();
        let host = root.join(mount_path.trim_start_matches('/'));
        if volume.get("persistentVolumeClaim").is_some() {
            std::fs::create_dir_all(host.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(location, &host).unwrap();
        } else if let Some(secret) = volume.get("secret") {
            std::fs::create_dir_all(&host).unwrap();
            let s = api.objects("", "secrets").into_iter().find(|s| s["metadata"]["name"] == secret["secretName"]).expect("the mounted Secret exists");
            for item in secret["items"].as_array().unwrap() {
                let data = unb64(s["data"][item["key"].as_str().unwrap()].as_str().unwrap());
                std::fs::write(host.join(item["path"].as_str().unwrap()), data).unwrap();
            }
        } else if let Some(config_map) = volume.get("configMap") {
            std::fs::create_dir_all(&host).unwrap();
            let c = api
                .objects("", "configmaps")
                .into_iter()
                .find(|c| c["metadata"]["name"] == config_map["name"] && c["metadata"]["namespace"] == namespace.as_str())
                .expect("the mounted ConfigMap exists");
            for item in config_map["items"].as_array().unwrap() {
                std::fs::write(host.join(item["path"].as_str().unwrap()), c["data"][item["key"].as_str().unwrap()].as_str().unwrap()).unwrap();
            }
        } else if let Some(projected) = volume.get("projected") {
            std::fs::create_dir_all(&host).unwrap();
            let path = projected["sources"][0]["serviceAccountToken"]["path"].as_str().unwrap();
            std::fs::write(host.join(path), &token).unwrap();
        } else {
            std::fs::create_dir_all(&host).unwrap();
        }
        mounts.push((mount_path.to_owned(), host));
    }
    // The service-account token every pod gets at the well-known path.
    let sa_dir = root.join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&sa_dir).unwrap();
    std::fs::write(sa_dir.join("token"), &token).unwrap();
    mounts.push(("/var/run/secrets/kubernetes.io/serviceaccount".into(), sa_dir));
    let remap = |v: &str| -> String {
        for (mount, host) in &mounts {
            if let Some(rest) = v.strip_prefix(mount.as_str()) {
                return format!("{}{rest}", host.display());
            }
        }
        v.to_owned()
    };
    let mut env = Vec::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = if let Some(v) = e["value"].as_str() {
            remap(v)
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" {
            namespace.clone()
        } else if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" {
            pod_name.to_owned()
        } else if let Some(r) = e["valueFrom"].get("secretKeyRef") {
            let s = api.objects("", "secrets").into_iter().find(|s| s["metadata"]["name"] == r["name"]).expect("the referenced Secret exists");
            unb64(s["data"][r["key"].as_str().unwrap()].as_str().unwrap())
        } else {
            panic!("unexpected env source {e}")
        };
        env.push((name, value));
    }
    // The job's default Vault token path is the pod's own token, at its real path here.
    if env.iter().any(|(k, _)| k == "DR_VAULT_ROLE") && !env.iter().any(|(k, _)| k == "DR_VAULT_SA_TOKEN_PATH") {
        env.push(("DR_VAULT_SA_TOKEN_PATH".into(), remap("/var/run/secrets/kubernetes.io/serviceaccount/token")));
    }
    let kubeconfig = root.join("kubeconfig");
    api.write_token_kubeconfig(&kubeconfig, &namespace, &token);
    Pod { args, env, kubeconfig, termination: root.join("termination-log") }
}

/// What happens to one pod of a Job: it runs the binary; it is killed with SIGKILL (the
/// OOM killer, exit 137, reason `OOMKilled`) before it can finish; or its main container
/// hangs (a process that never ends by itself, as a restore stuck in I/O) until the pod is
/// deleted; or its node is lost this long after the main container started: every container
/// of the pod dies at once with nothing told (no SIGTERM, so no container can clean up), the
/// pod garbage collector marks it `DisruptionTarget` (`DeletionByPodGC`) and deletes it, and
/// the Job, whose `podFailurePolicy` ignores disruptions, makes another pod at once without
/// counting a failure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PodFate {
    Runs,
    Killed,
    Hangs,
    NodeLost(std::time::Duration),
}

/// The Job controller's first retry delay; each further one doubles, up to six minutes.
const JOB_BACKOFF: std::time::Duration = std::time::Duration::from_secs(10);

/// A pod's grace period when its spec sets none.
const DEFAULT_GRACE: u64 = 30;

/// Sends `signal` (`TERM`, `KILL`) to a process, as the container runtime does.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status();
}

/// A running container's process: its output collected on a blocking thread.
struct Running {
    pid: u32,
    done: tokio::task::JoinHandle<(i32, String)>,
}

impl Running {
    /// Waits for it to exit; past `deadline`, stops it as a kubelet stops a container of a pod
    /// being deleted: SIGTERM, then SIGKILL after the grace period. Returns its exit code and
    /// output, and whether it had to be stopped.
    async fn wait(mut self, deadline: Option<tokio::time::Instant>, grace: std::time::Duration) -> ((i32, String), bool) {
        let stop = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            out = &mut self.done => (out.unwrap(), false),
            _ = stop => (self.stop(grace).await, true),
        }
    }

    async fn stop(mut self, grace: std::time::Duration) -> (i32, String) {
        signal(self.pid, "TERM");
        match tokio::time::timeout(grace, &mut self.done).await {
            Ok(out) => out.unwrap(),
            Err(_) => {
                signal(self.pid, "KILL");
                self.done.await.unwrap()
            }
        }
    }
}

/// Plays a Job to the end, as the kubelet and the Job controller do: one pod at a time, its
/// native sidecars (init containers with `restartPolicy: Always`) started first, then its
/// main container running `binary` with the pod's environment; once the main container has
/// exited (its terminated state written to the Pod), each sidecar gets SIGTERM and, after the
/// grace period, SIGKILL; then the pod's phase. A failed pod is replaced after the
/// controller's backoff (10 s, doubling) until `backoffLimit` failures, unless a
/// `podFailurePolicy` rule with `FailJob` matches its exit code; past `activeDeadlineSeconds`
/// (from the Job's start) the Job fails with `DeadlineExceeded` and its running pod is
/// deleted (SIGTERM to the main container, SIGKILL after the grace period, then the
/// sidecars). The Job's status carries `active`, `failed`, `succeeded` and the conditions a
/// real controller sets (`SuccessCriteriaMet` then `Complete`; `FailureTarget` then `Failed`,
/// with reason `PodFailurePolicy`, `BackoffLimitExceeded` or `DeadlineExceeded`). Between a
/// failed pod and its replacement the Job has `failed > 0`, `active == 0` and no terminal
/// condition, as on a real cluster. Returns the exit code of each pod's main container, in
/// order.
pub async fn run_job_with(api: &ApiServer, job: &Value, binary: &str, location: &Path, fates: &[PodFate]) -> Vec<i32> {
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    let namespace = job["metadata"]["namespace"].as_str().unwrap().to_owned();
    let template = &job["spec"]["template"]["spec"];
    let container = template["containers"][0]["name"].as_str().unwrap().to_owned();
    let sidecars: Vec<Value> = template["initContainers"].as_array().into_iter().flatten().filter(|c| c["restartPolicy"] == "Always").cloned().collect();
    let grace = std::time::Duration::from_secs(template["terminationGracePeriodSeconds"].as_u64().unwrap_or(DEFAULT_GRACE));
    let backoff_limit = job["spec"]["backoffLimit"].as_u64().unwrap_or(6);
    let started = tokio::time::Instant::now();
    let deadline = job["spec"]["activeDeadlineSeconds"].as_u64().map(|s| started + std::time::Duration::from_secs(s));
    let fail_job_codes: Vec<i64> = job["spec"]["podFailurePolicy"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] == "FailJob" && r["onExitCodes"]["operator"] == "In")
        .flat_map(|r| r["onExitCodes"]["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_i64())
        .collect();
    let jobs: kube::Api<k8s_openapi::api::batch::v1::Job> = kube::Api::namespaced(api.client(), &namespace);
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(api.client(), &namespace);
    let set_status = |mut status: Value| {
        // Counts are omitted when zero, as the real API serves them (null removes them).
        for count in ["active", "failed", "succeeded"] {
            if status.get(count) == Some(&json!(0)) {
                status[count] = Value::Null;
            }
        }
        let jobs = jobs.clone();
        let name = name.clone();
        async move {
            // A Job deleted meanwhile (a CronJob's Jobs go with it) has no status to write, as
            // for the real controller: whether it is still there.
            match jobs.patch_status(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(json!({"status": status}))).await {
                Ok(_) => true,
                Err(e) if is_not_found(&e) => false,
                Err(e) => panic!("writing job {name}'s status: {e}"),
            }
        }
    };
    let set_pod_status = |pod: String, status: Value| {
        let pods = pods.clone();
        async move {
            pods.patch_status(&pod, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(json!({"status": status})))
                .await
                .or_else(|e| if is_not_found(&e) { Ok(Default::default()) } else { Err(e) })
                .expect("the pod's status is written unless the pod was deleted");
        }
    };
    let condition = |ty: &str, reason: &str, message: &str| json!({"type": ty, "status": "True", "reason": reason, "message": message, "lastProbeTime": now(), "lastTransitionTime": now()});
    let deadline_exceeded = "Job was active longer than specified deadline";
    let start = now();
    let mut codes = Vec::new();
    let mut failed = 0u64;
    let mut delay = JOB_BACKOFF;
    loop {
        if !set_status(json!({"startTime": start, "active": 1, "ready": 0, "failed": failed})).await {
            // Deleted: the controller makes no more pods.
            return codes;
        }
        let sidecar_specs: Vec<Value> = sidecars.iter().map(|c| json!({"name": c["name"], "image": "dr-job", "restartPolicy": "Always"})).collect();
        let pod = api.seed(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": format!("{name}-"), "namespace": namespace,
                                          "labels": {"job-name": name, "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]},
                                          "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"],
                                                               "controller": true, "blockOwnerDeletion": true}]},
                                   "spec": {"initContainers": sidecar_specs, "containers": [{"name": container, "image": "dr-job"}]},
                                   "status": {"phase": "Pending"}}));
        let pod_name = pod["metadata"]["name"].as_str().unwrap().to_owned();
        let root = tempfile::tempdir().unwrap();
        // Native sidecars first: each is started (and running) before the main container.
        let mut running_sidecars = Vec::new();
        for sidecar in &sidecars {
            let dir = root.path().join(sidecar["name"].as_str().unwrap());
            std::fs::create_dir_all(&dir).unwrap();
            let process = pod_for_container(api, job, sidecar, &pod_name, location, &dir);
            let log = dir.join("log");
            let mut child = process.spawn_logged(binary, &log);
            let pid = child.id();
            let done = tokio::task::spawn_blocking(move || {
                let status = child.wait().unwrap();
                (exit_code(status), std::fs::read_to_string(&log).unwrap_or_default())
            });
            // Started: the kubelet runs the next container once a sidecar's has started; the
            // process has when it says so (its first log line), as a runtime's start takes far
            // longer than dr-job's getting ready for SIGTERM.
            for _ in 0..100 {
                if std::fs::metadata(dir.join("log")).is_ok_and(|m| m.len() > 0) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            running_sidecars.push((sidecar["name"].as_str().unwrap().to_owned(), Running { pid, done }));
        }
        let sidecar_states =
            |state: Value| -> Vec<Value> { sidecars.iter().map(|c| json!({"name": c["name"], "restartCount": 0, "state": state.clone()})).collect() };
        set_pod_status(
            pod_name.clone(),
            json!({"phase": "Running", "initContainerStatuses": sidecar_states(json!({"running": {"startedAt": now()}})),
                                                "containerStatuses": [{"name": container, "state": {"running": {"startedAt": now()}}}]}),
        )
        .await;
        // Its container has started: its log is there (empty), as a kubelet's is.
        api.append_pod_log(&namespace, &pod_name, "");
        let fate = fates.get(codes.len()).copied().unwrap_or(PodFate::Runs);
        let dir = root.path().join(&container);
        std::fs::create_dir_all(&dir).unwrap();
        let process = pod_for_container(api, job, &template["containers"][0], &pod_name, location, &dir);
        let mut child = match fate {
            PodFate::Hangs => Pod { args: vec!["3600".into()], ..process.clone_paths() }.spawn("sleep"),
            _ => process.spawn(binary),
        };
        if fate == PodFate::Killed {
            // The OOM killer: SIGKILL, no chance to clean up.
            child.kill().unwrap();
        }
        if let PodFate::NodeLost(after) = fate {
            // The node goes: all of the pod's processes with it, at once.
            let pids: Vec<u32> = std::iter::once(child.id()).chain(running_sidecars.iter().map(|(_, r)| r.pid)).collect();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                for pid in pids {
                    signal(pid, "KILL");
                }
            });
        }
        let running = Running {
            pid: child.id(),
            done: tokio::task::spawn_blocking({
                let api = api.clone();
                let namespace = namespace.clone();
                let pod_name = pod_name.clone();
                // The container's output becomes the pod's log as it is written, stdout and
                // stderr interleaved line by line, as a kubelet keeps it.
                move || stream_output(child, &api, &namespace, &pod_name)
            }),
        };
        let ((code, output), stopped) = running.wait(deadline, grace).await;
        if stopped {
            // At the deadline the controller marks the verdict, then deletes the pod, whose
            // containers the kubelet stops.
            set_status(json!({"conditions": [condition("FailureTarget", "DeadlineExceeded", deadline_exceeded)]})).await;
        }
        codes.push(code);
        if code != 0 {
            eprintln!("job {name} pod exited {code}:\n{output}");
        }
        let fallback = template["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError";
        let reason = match (fate, code) {
            (PodFate::Killed, _) => "OOMKilled",
            (_, 0) => "Completed",
            _ => "Error",
        };
        let message = termination_message(&process.termination, code, fallback, &output);
        let mut terminated = json!({"exitCode": code, "reason": reason, "startedAt": start, "finishedAt": now()});
        if !message.is_empty() {
            terminated["message"] = json!(message);
        }
        if let PodFate::NodeLost(_) = fate {
            // No kubelet reports the containers' end: the pod garbage collector marks the pod
            // and deletes it, and the Job's podFailurePolicy ignores it (no failure counted).
            for (_, running) in running_sidecars {
                let _ = running.done.await;
            }
            set_pod_status(
                pod_name.clone(),
                json!({"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                                                                     "message": "PodGC: node no longer exists", "lastTransitionTime": now()}]}),
            )
            .await;
            if let Err(e) = pods.delete(&pod_name, &Default::default()).await {
                assert!(is_not_found(&e), "deleting pod {pod_name}: {e}");
            }
            continue;
        }
        // The main container's end is in the pod's status before the sidecars are stopped:
        // the pod is still Running while they run.
        set_pod_status(pod_name.clone(), json!({"containerStatuses": [{"name": container, "state": {"terminated": terminated}}]})).await;
        for (sidecar, running) in running_sidecars {
            let (sidecar_code, sidecar_log) = running.stop(grace).await;
            eprintln!("job {name} pod {pod_name} sidecar {sidecar} exited {sidecar_code}:\n{sidecar_log}");
        }
        set_pod_status(pod_name.clone(), json!({"phase": if code == 0 { "Succeeded" } else { "Failed" },
                                                "initContainerStatuses": sidecar_states(json!({"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now()}}))})).await;
        if code == 0 && !stopped {
            set_status(json!({"active": 0, "ready": 0, "succeeded": 1, "failed": failed, "completionTime": now(),
                              "conditions": [condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                                             condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods")]}))
            .await;
            return codes;
        }
        failed += 1;
        let verdict = if stopped {
            Some(("DeadlineExceeded", deadline_exceeded.to_owned()))
        } else if fail_job_codes.contains(&i64::from(code)) {
            Some((
                "PodFailurePolicy",
                format!("Container {container} for pod {namespace}/{pod_name} failed with exit code {code} matching FailJob rule at index 0"),
            ))
        } else if failed > backoff_limit {
            Some(("BackoffLimitExceeded", "Job has reached the specified backoff limit".to_owned()))
        } else {
            None
        };
        let fail = |reason: &'static str, message: String| {
            let set_status = &set_status;
            async move {
                // The controller marks the verdict first and the Job Failed once its pods are gone.
                set_status(json!({"active": 0, "ready": 0, "failed": failed, "conditions": [condition("FailureTarget", reason, &message)]})).await;
                set_status(json!({"conditions": [condition("FailureTarget", reason, &message), condition("Failed", reason, &message)]})).await;
            }
        };
        match verdict {
            Some((reason, message)) => {
                fail(reason, message).await;
                return codes;
            }
            None => {
                set_status(json!({"active": 0, "ready": 0, "failed": failed})).await;
                let wake = tokio::time::Instant::now() + delay;
                if deadline.is_some_and(|d| d <= wake) {
                    tokio::time::sleep_until(deadline.unwrap()).await;
                    fail("DeadlineExceeded", deadline_exceeded.to_owned()).await;
                    return codes;
                }
                tokio::time::sleep_until(wake).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(360));
            }
        }
    }
}

/// A process's exit code as a container runtime reports it: 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(9))
}

/// Waits for `child`, copying each line it writes (stdout and stderr) into the pod's log;
/// returns its exit code (128 + the signal when one ended it) and everything it wrote.
fn stream_output(mut child: std::process::Child, api: &ApiServer, namespace: &str, pod: &str) -> (i32, String) {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> =
        [child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>), child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>)]
            .into_iter()
            .flatten()
            .map(|stream| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                        let _ = tx.send(line);
                    }
                })
            })
            .collect();
    drop(tx);
    let mut all = String::new();
    for line in rx {
        let line = format!("{line}\n");
        api.append_pod_log(namespace, pod, &line);
        all.push_str(&line);
    }
    for r in readers {
        let _ = r.join();
    }
    let code = exit_code(child.wait().unwrap());
    api.end_pod_log(namespace, pod);
    (code, all)
}

/// [`run_job_with`] where every pod runs: the exit code of the last pod.
pub async fn run_job(api: &ApiServer, job: &Value, binary: &str, location: &Path) -> i32 {
    *run_job_with(api, job, binary, location, &[]).await.last().expect("a Job runs at least one pod")
}

fn now() -> String {
    dr_core::point::rfc3339(time::OffsetDateTime::now_utc().replace_millisecond(0).unwrap())
}
