#!/usr/bin/env python3
"""Lints and renders charts/dr-restore with the Helm library (PyPI helm-python-sdk) for every
supported setup, and checks that values.schema.json rejects each bad value before anything
reaches a cluster. Run by scripts/test; exits non-zero on the first failure."""
import json
import os
import sys

import helm_python as helm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from render import CHART, render, values_from_args  # noqa: E402

NS = "kasten-io"
BASE = ["--set", "sourceClusterID=0b6bd9b4-2c4a-4d1e-9a3e-3b7f0f6a1c2d", "--set", "profile.name=offsite"]
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"))
    if not cond:
        failures.append(name)


def job_of(out):
    return next(m for m in out["manifests"] if m["kind"] == "Job")


def env_of(out):
    c = job_of(out)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def job_values(out):
    """The chart's values as the job reads them: DR_RESTORE_VALUES, JSON."""
    return json.loads(env_of(out)["DR_RESTORE_VALUES"])


def setup(name, *args):
    values = values_from_args(list(BASE) + list(args))
    report = helm.lint(CHART, values, strict=True, namespace=NS)
    errors = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    check(f"lint {name}", not errors, errors)
    return render(NS, "k10-restore", values)


def hardened(out, name):
    pod = job_of(out)["spec"]["template"]["spec"]
    c = pod["containers"][0]
    sc = c["securityContext"]
    check(f"{name}: pod non-root with seccomp RuntimeDefault",
          pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault")
    check(f"{name}: container hardened",
          sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], sc)


# Defaults (the seed's minimal install).
out = setup("defaults")
env = env_of(out)
check("defaults: job named after the release", job_of(out)["metadata"]["name"] == "k10-restore")
vals = job_values(out)
check("defaults: cluster ID and profile passed", vals["sourceClusterID"] == "0b6bd9b4-2c4a-4d1e-9a3e-3b7f0f6a1c2d" and vals["profile"]["name"] == "offsite", vals)
check("defaults: timeout 30 minutes", vals["restore"]["timeout"] == 30, vals)
check("defaults: the values travel whole, and nothing else restores through its own variable",
      not ({"DR_SOURCE_CLUSTER_ID", "DR_PROFILE", "DR_SKIP_RESOURCE", "DR_RESTORE_CONTROLS", "DR_QUICK_MODE"} & set(env)), env)
check("defaults: no passphrase or vault settings in the env", not any(k.startswith("DR_VAULT") for k in env) and "key" not in env, env)
check("defaults: image from appVersion", job_of(out)["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/kubectl-dr/dr-job:0.1.0")
kinds = sorted(m["kind"] for m in out["manifests"])
check("defaults: full restore gets cluster-wide RBAC", kinds == ["ClusterRole", "ClusterRoleBinding", "Job", "Role", "RoleBinding", "ServiceAccount"], kinds)
cr = next(m for m in out["manifests"] if m["kind"] == "ClusterRole")
check("defaults: the cluster role deletes nothing but its own binding, by name",
      all(("delete" not in r["verbs"] or r.get("resources") == ["clusterrolebindings"] and r.get("resourceNames") == ["k10-restore-kasten-io"])
          and "*" not in r["verbs"] for r in cr["rules"]), cr["rules"])
check("defaults: no patch unless overriding or restoring status", all("patch" not in r["verbs"] for r in cr["rules"]), cr["rules"])
check("defaults: the job knows which binding ends its grant", env.get("DR_RBAC_BINDING") == "k10-restore-kasten-io", env)
crb = next(m for m in out["manifests"] if m["kind"] == "ClusterRoleBinding")
check("defaults: that binding is the chart's", crb["metadata"]["name"] == env.get("DR_RBAC_BINDING"), crb["metadata"])
check("defaults: NOTES tell how to watch and take ownership", "take-ownership" in out["notes"] and "logs -f job/k10-restore" in out["notes"], out["notes"])
hardened(out, "defaults")


def keeper_of(out):
    return next((c for c in job_of(out)["spec"]["template"]["spec"].get("initContainers", []) if c["name"] == "grant-keeper"), None)


# The grant keeper: a native sidecar on 1.29+ (Helm's default version here), with the
# hardening of the main container, reading its pod through the Role.
keeper = keeper_of(out)
check("grant keeper: a native sidecar on 1.29+", keeper is not None and keeper.get("restartPolicy") == "Always" and keeper["args"] == ["grant-keeper"], keeper)
check("grant keeper: hardened like the restore container",
      keeper is not None and keeper["securityContext"] == job_of(out)["spec"]["template"]["spec"]["containers"][0]["securityContext"], keeper)
kenv = {e["name"]: e.get("value", e.get("valueFrom")) for e in (keeper or {}).get("env", [])}
check("grant keeper: ends the chart's binding, knows its pod", kenv.get("DR_RBAC_BINDING") == "k10-restore-kasten-io"
      and kenv.get("DR_POD_NAME") == {"fieldRef": {"fieldPath": "metadata.name"}}, kenv)
role = next(m for m in out["manifests"] if m["kind"] == "Role")
check("grant keeper: the Role reads pods (a Job's pods have generated names), nothing more on them",
      any(r["resources"] == ["pods"] and r["verbs"] == ["get"] and "resourceNames" not in r for r in role["rules"]), role["rules"])
for name, args in [("a 1.28 cluster", ["--set", "kubeVersion=v1.28.9"]),
                   ("grantKeeper.enabled=false", ["--set", "grantKeeper.enabled=false"]),
                   ("quick mode", ["--set", "quickMode.enabled=true", "--set", "quickMode.overrideResources=true"])]:
    check(f"grant keeper: none with {name}", keeper_of(setup(f"keeper off: {name}", *args)) is None)
check("grant keeper: on for 1.29.0", keeper_of(setup("keeper 1.29", "--set", "kubeVersion=v1.29.0")) is not None)
lint_old = helm.lint(CHART, values_from_args(list(BASE)), strict=True, namespace=NS, kube_version="v1.28.0")
check("grant keeper: the chart lints for a 1.28 cluster", not [m for m in lint_old["messages"] if m["severity"] >= 2] + lint_old.get("errors", []), lint_old)

# Seed options: pointInTime, skipResource with the seed's escaped comma, timeout, quick mode.
out = setup("options", "--set", "pointInTime=2022-01-02T15:04:05Z", "--set", "skipResource=profiles\\,policies",
            "--set", "restore.timeout=45", "--set", "quickMode.enabled=true", "--set", "quickMode.overrideResources=true")
env = env_of(out)
vals = job_values(out)
check("options: reach the job in its values", vals["pointInTime"] == "2022-01-02T15:04:05Z" and vals["skipResource"] == "profiles,policies"
      and vals["restore"]["timeout"] == 45 and vals["quickMode"] == {"enabled": True, "overrideResources": True}, vals)
check("options: quick mode gets no cluster-wide RBAC", not any(m["kind"].startswith("Cluster") for m in out["manifests"]))
check("options: no status restored unless asked", vals["restore"]["status"] == "", vals)
out = setup("by-id", "--set", "restorePointID=20261121T093000.123Z-0a1b2c3d")
check("by id: restorePointID reaches the job", job_values(out)["restorePointID"] == "20261121T093000.123Z-0a1b2c3d", job_values(out))
check("by id: unset, empty", vals["restorePointID"] == "", vals)
out = setup("status", "--set", "restore.status=Widget.example.com\\,certs.cert-manager.io")
check("status: restore.status reaches the job", job_values(out)["restore"]["status"] == "Widget.example.com,certs.cert-manager.io", job_values(out))
cr = next(m for m in out["manifests"] if m["kind"] == "ClusterRole")
check("status: writing status back needs patch", any("patch" in r["verbs"] for r in cr["rules"]), cr["rules"])
out = setup("scoped", "--set-json", 'rbac.resources=[{"group":"apps","resource":"deployments"},{"group":"","resource":"configmaps"}]',
            "--set", "restore.status=all")
cr = next(m for m in out["manifests"] if m["kind"] == "ClusterRole")
check("scoped: each resource of the point by name, no wildcard",
      [(r["apiGroups"], r["resources"]) for r in cr["rules"] if "create" in r["verbs"]]
      == [(["apps"], ["deployments", "deployments/status"]), ([""], ["configmaps", "configmaps/status"])], cr["rules"])
out = setup("override", "--set", "quickMode.overrideResources=true")
cr = next(m for m in out["manifests"] if m["kind"] == "ClusterRole")
check("override: overriding needs patch", any("patch" in r["verbs"] and r["resources"] == ["*"] for r in cr["rules"]), cr["rules"])
check("options: quick mode has no grant to end", "DR_RBAC_BINDING" not in env_of(setup("quick", "--set", "quickMode.enabled=true", "--set", "quickMode.overrideResources=true")))

# Vault token auth.
out = setup("vault token", "--set", "vault.enabled=true", "--set", "vault.address=https://vault.example.com:8200", "--set", "vault.secretName=vault-creds")
env = env_of(out)
pod = job_of(out)["spec"]["template"]["spec"]
check("vault token: address and token file", env["DR_VAULT_ADDRESS"] == "https://vault.example.com:8200" and env["DR_VAULT_TOKEN_FILE"] == "/var/run/secrets/vault/vault_token", env)
check("vault token: the Secret's vault_token key is mounted", any(v.get("secret", {}).get("secretName") == "vault-creds" and v["secret"]["items"][0]["key"] == "vault_token" for v in pod["volumes"]))

# Vault Kubernetes auth, default and custom token path.
out = setup("vault kubernetes", "--set", "vault.enabled=true", "--set", "vault.address=http://vault:8200", "--set", "vault.role=dr")
env = env_of(out)
check("vault kubernetes: role, default token path", env["DR_VAULT_ROLE"] == "dr" and "DR_VAULT_SA_TOKEN_PATH" not in env and "DR_VAULT_TOKEN_FILE" not in env, env)
out = setup("vault kubernetes custom path", "--set", "vault.enabled=true", "--set", "vault.address=http://vault:8200", "--set", "vault.role=dr",
            "--set", "vault.serviceAccountTokenPath=/var/run/secrets/vault-sa/token")
env = env_of(out)
pod = job_of(out)["spec"]["template"]["spec"]
check("vault kubernetes custom path: a projected token is mounted there",
      env["DR_VAULT_SA_TOKEN_PATH"] == "/var/run/secrets/vault-sa/token"
      and any(m["mountPath"] == "/var/run/secrets/vault-sa" for m in pod["containers"][0]["volumeMounts"])
      and any(v.get("projected", {}).get("sources", [{}])[0].get("serviceAccountToken", {}).get("path") == "token" for v in pod["volumes"]), pod)

# AWS Secrets Manager with a credentials Secret, and IRSA.
out = setup("aws", "--set", "aws.credentialsSecret=aws-creds", "--set-json", 'serviceAccount={"annotations":{"eks.amazonaws.com/role-arn":"arn:aws:iam::1:role/dr"}}')
env = env_of(out)
check("aws: credentials from the Secret", env["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == "aws-creds", env)
sa = next(m for m in out["manifests"] if m["kind"] == "ServiceAccount")
check("aws: IRSA annotation on the service account", sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(":role/dr"))

# Air-gapped repository, image pull secrets, digest, pod labels and annotations.
out = setup("air-gapped", "--set", "airgapped.repository=repo.example.com", "--set-json", 'imagePullSecrets=[{"name":"k10-ecr"}]',
            "--set-json", 'podLabels={"team":"platform"}', "--set-json", 'podAnnotations={"sidecar.istio.io/inject":"false"}')
pod = job_of(out)["spec"]["template"]
check("air-gapped: image rewritten to the repository", pod["spec"]["containers"][0]["image"] == "repo.example.com/dr-job:0.1.0", pod["spec"]["containers"][0]["image"])
check("air-gapped: pull secrets, labels, annotations", pod["spec"]["imagePullSecrets"] == [{"name": "k10-ecr"}]
      and pod["metadata"]["labels"]["team"] == "platform" and pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false", pod)
out = setup("digest", "--set", "image.digest=sha256:" + "a" * 64)
check("digest: pins the image", job_of(out)["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/kubectl-dr/dr-job@sha256:" + "a" * 64)

# FIPS and hardened values files.
out = setup("fips", "-f", "values-fips.yaml")
env = env_of(out)
check("fips: FIPS image and the job refuses non-FIPS crypto", job_values(out)["fips"]["enabled"] is True
      and job_of(out)["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/kubectl-dr/dr-job:0.1.0-fips", env)
out = setup("fips air-gapped", "-f", "values-fips.yaml", "--set", "airgapped.repository=repo.example.com/dr")
check("fips air-gapped: the FIPS tag in the mirror", job_of(out)["spec"]["template"]["spec"]["containers"][0]["image"] == "repo.example.com/dr/dr-job:0.1.0-fips")
hardened(out, "fips")
out = setup("hardened", "-f", "values-hardened.yaml", "--set-json", 'imagePullSecrets=[{"name":"hardened-registry"}]')
check("hardened: this project's image, always pulled", job_of(out)["spec"]["template"]["spec"]["containers"][0]["image"] == "localhost/kubectl-dr/dr-job:0.1.0"
      and job_of(out)["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always")

# Vault's CA bundle, from a ConfigMap or a Secret, mounted and named to the job.
for source in ["configMap", "secret"]:
    out = setup(f"vault CA from a {source}", "--set", "vault.enabled=true", "--set", "vault.address=https://vault.example.com:8200",
                "--set", "vault.role=dr", "--set", f"vault.caBundle.{source}=vault-ca", "--set", "vault.caBundle.key=root.pem")
    pod = job_of(out)["spec"]["template"]["spec"]
    env = env_of(out)
    volume = next((v for v in pod["volumes"] if v["name"] == "vault-ca"), {})
    ref = volume.get(source, {})
    check(f"vault CA from a {source}: mounted and named", env.get("DR_VAULT_CA_BUNDLE") == "/etc/kubectl-dr/vault-ca/ca.crt"
          and (ref.get("name") or ref.get("secretName")) == "vault-ca" and ref.get("items") == [{"key": "root.pem", "path": "ca.crt"}]
          and any(m["mountPath"] == "/etc/kubectl-dr/vault-ca" for m in pod["containers"][0]["volumeMounts"]), volume)
out = setup("vault without CA", "--set", "vault.enabled=true", "--set", "vault.address=https://v:8200", "--set", "vault.role=dr")
check("vault without CA: nothing mounted", "DR_VAULT_CA_BUNDLE" not in env_of(out))
hardened(out, "hardened")

# File profile: the PVC is mounted read-only.
out = setup("file profile", "--set", "fileProfile.claimName=dr-nfs")
pod = job_of(out)["spec"]["template"]["spec"]
check("file profile: PVC mounted read-only", any(v.get("persistentVolumeClaim", {}).get("claimName") == "dr-nfs" for v in pod["volumes"]))

# monitoring.pushgatewayURL reaches the Job; unset, nothing is pushed.
out = setup("pushgateway", "--set", "monitoring.pushgatewayURL=http://pushgateway.monitoring:9091")
check("pushgateway: DR_PUSHGATEWAY_URL set", env_of(out).get("DR_PUSHGATEWAY_URL") == "http://pushgateway.monitoring:9091", env_of(out))
check("no pushgateway: nothing pushed", "DR_PUSHGATEWAY_URL" not in env_of(setup("no pushgateway")))

# The schema rejects what would fail later, before anything is installed.
def rejected(name, args, needle):
    values = values_from_args(list(args))
    try:
        render(NS, "k10-restore", values)
    except helm.HelmError as e:
        check(f"schema rejects {name}", needle in str(e), str(e))
        return
    check(f"schema rejects {name}", False, "was accepted")


rejected("a missing sourceClusterID", ["--set", "profile.name=offsite"], "sourceClusterID")
rejected("a Pushgateway that is not a URL", BASE + ["--set", "monitoring.pushgatewayURL=pushgateway:9091"], "pushgatewayURL")
rejected("a missing profile.name", ["--set", "sourceClusterID=abc"], "profile")
rejected("a pointInTime that is not RFC3339", BASE + ["--set", "pointInTime=2022-01-02 15:04"], "pointInTime")
rejected("a date without time", BASE + ["--set", "pointInTime=2022-01-02"], "pointInTime")
rejected("a restorePointID that is not a point ID", BASE + ["--set", "restorePointID=2026-11-21T09:30:00Z"], "restorePointID")
rejected("a restorePointID that is a path", BASE + ["--set", "restorePointID=../20261121T093000.123Z-0a1b2c3d"], "restorePointID")
rejected("a zero timeout", BASE + ["--set", "restore.timeout=0"], "timeout")
rejected("a negative timeout", BASE + ["--set", "restore.timeout=-5"], "timeout")
rejected("a timeout longer than a week", BASE + ["--set", "restore.timeout=999999999"], "timeout")
rejected("a restore.status that is not a list of kinds", BASE + ["--set", "restore.status=all\nx: y"], "status")
rejected("an unknown skipResource name", BASE + ["--set", "skipResource=profiles\\,catalog"], "skipResource")
rejected("quick mode without overrideResources", BASE + ["--set", "quickMode.enabled=true"], "overrideResources")
rejected("vault without address", BASE + ["--set", "vault.enabled=true", "--set", "vault.secretName=v"], "address")
rejected("a misspelt value", BASE + ["--set", "pointIntime=2022-01-02T15:04:05Z"], "pointIntime")
rejected("a Vault CA from both a ConfigMap and a Secret", BASE + ["--set", "vault.enabled=true", "--set", "vault.address=https://v:8200", "--set", "vault.role=r",
         "--set", "vault.caBundle.configMap=a", "--set", "vault.caBundle.secret=b"], "caBundle")
rejected("a Vault CA name that is not a name", BASE + ["--set", "vault.caBundle.configMap=bad\nname: x"], "caBundle")
# Every name and address that reaches the manifests is checked, so no value can add fields
# to them (a newline and an indented key used to land in the Job's YAML).
INJECT = "x\n  injected: true"
VAULT = ["--set", "vault.enabled=true", "--set", "vault.address=https://v:8200"]
for key, extra in [("aws.credentialsSecret", []), ("aws.secretsManagerEndpoint", []), ("vault.secretName", VAULT), ("vault.role", VAULT),
                   ("vault.authMount", VAULT + ["--set", "vault.role=r"]), ("vault.serviceAccountTokenPath", VAULT + ["--set", "vault.role=r"]),
                   ("airgapped.repository", []), ("image.repository", []), ("image.tag", []), ("imagePullSecrets[0].name", [])]:
    rejected(f"a newline in {key}", BASE + extra + ["--set", f"{key}={INJECT}"], key.split(".")[-1].split("[")[0])
rejected("a Vault address with a quote", BASE + ["--set", "vault.enabled=true", "--set", 'vault.address=https://v:8200"x', "--set", "vault.role=r"], "address")
rejected("a wildcard resource", BASE + ["--set-json", 'rbac.resources=[{"group":"","resource":"*"}]'], "resource")
rejected("a subresource", BASE + ["--set-json", 'rbac.resources=[{"group":"","resource":"pods/exec"}]'], "resource")
rejected("a wildcard group", BASE + ["--set-json", 'rbac.resources=[{"group":"*","resource":"pods"}]'], "group")
# The restore controls: names the schema can see are wrong, and no newline anywhere.
for key in ["select.selector", "resourceModifiers.configMap"]:
    rejected(f"a newline in {key}", BASE + ["--set", f"{key}={INJECT}"], key.split(".")[-1])
rejected("a namespace that is not a name", BASE + ["--set-json", 'select.includeNamespaces=["Shop"]'], "includeNamespaces")
rejected("an object that is not KIND/NAMESPACE/NAME", BASE + ["--set-json", 'select.objects=["web"]'], "objects")
rejected("a namespace mapped onto a bad name", BASE + ["--set-json", 'mapping.namespaces={"shop":"a b"}'], "namespaces")
rejected("an unknown existing policy", BASE + ["--set", "existing=replace"], "existing")
rejected("an unknown control", BASE + ["--set", "select.namespaces=shop"], "namespaces")

if failures:
    print(f"{len(failures)} chart checks failed: {failures}")
    sys.exit(1)
print("all chart checks passed")
