#!/usr/bin/env python3
"""The checks of scripts/check-dist; prints one line per check and exits 1 if any failed."""
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

import yaml
from helm_python import registry as helm_registry
from helm_python.chart import Chart

from dist import sha256

BUDGET = 25 * 1000 * 1000
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"), flush=True)
    if not cond:
        failures.append(name)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def registry(tmp):
    port = free_port()
    config = os.path.join(tmp, "registry.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/registry\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("docker-registry did not start")


def manifest(host, repository, reference):
    req = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{reference}",
                                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Docker-Content-Digest"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, None, b""


def main(dist):
    version = next(l.split('"')[1] for l in open("Cargo.toml") if l.startswith("version = "))
    tmp = tempfile.mkdtemp()

    # The archives: static binaries within budget.
    bins = {}
    for name in ["kubectl-dr", "dr-job"]:
        archive = os.path.join(dist, f"{name}_{version}_linux_amd64.tar.gz")
        with tarfile.open(archive) as t:
            t.extractall(os.path.join(tmp, name), filter="data")
        path = os.path.join(tmp, name, name)
        bins[name] = path
        # ldd: "not a dynamic executable", or "statically linked" for a static PIE; either way
        # no program interpreter and no shared library.
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True)
        elf = subprocess.run(["readelf", "-lW", "-dW", path], capture_output=True, text=True).stdout
        static = ("not a dynamic executable" in ldd.stdout + ldd.stderr or "statically linked" in ldd.stdout) and "INTERP" not in elf and "NEEDED" not in elf
        check(f"{name}: statically linked", static, ldd.stdout + ldd.stderr)
        size = os.path.getsize(path)
        check(f"{name}: {size / 1e6:.1f} MB, within 25 MB", size <= BUDGET, size)

    # kubectl's completer for `kubectl dr <TAB>`, beside the plugin: it answers from the binary
    # next to it, in cobra's format, with no kubectl-dr on the PATH.
    completer = os.path.join(tmp, "kubectl-dr", "kubectl_complete-dr")
    check("kubectl_complete-dr: in the plugin's archive, executable", os.access(completer, os.X_OK))
    if os.access(completer, os.X_OK):
        out = subprocess.run([completer, "images", ""], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        names = [line.split("\t")[0] for line in out.stdout.splitlines()]
        check("kubectl_complete-dr: completes `kubectl dr images <TAB>`", out.returncode == 0 and names == ["mirror", "package-chart", "help", ":4"] and not out.stderr,
              out.stdout + out.stderr)

    # Checksums and the krew manifest.
    sums = {}
    for line in open(os.path.join(dist, "SHA256SUMS")):
        digest, name = line.split()
        sums[name] = digest
        check(f"SHA256SUMS: {name}", sha256(os.path.join(dist, name)) == digest)
    krew = yaml.safe_load(open(os.path.join(dist, "krew", "dr.yaml")))
    check("krew: plugin dr at this version", krew["kind"] == "Plugin" and krew["metadata"]["name"] == "dr" and krew["spec"]["version"] == f"v{version}", krew)
    for p in krew["spec"]["platforms"]:
        archive = os.path.join(dist, os.path.basename(p["uri"]))
        check(f"krew: {os.path.basename(p['uri'])} exists with the manifest's sha256", os.path.isfile(archive) and sha256(archive) == p["sha256"], p)
        with tarfile.open(archive) as t:
            members = {os.path.normpath(m.name) for m in t.getmembers()}
            check(f"krew: bin {p['bin']} is in the archive", p["bin"] in members)
            for f in p.get("files", []):
                check(f"krew: files {f['from']} is in the archive", f["from"] in members, sorted(members))
    check("krew: the caveats say how to link kubectl_complete-dr", "kubectl_complete-dr" in krew["spec"].get("caveats", ""), krew["spec"])

    # The plugin names the image it was built with, by digest.
    dr = bins["kubectl-dr"]
    listed = json.loads(subprocess.run([dr, "images", "-o", "json"], check=True, capture_output=True, text=True).stdout)
    images, chart_listed = listed[0], listed[1]
    digest = open(os.path.join(dist, f"dr-job_{version}.digest")).read().strip()
    check("kubectl dr images: the image built with it, pinned", images["digest"] == digest and images["tag"] == version, images)
    ver = json.loads(subprocess.run([dr, "version", "-o", "json"], check=True, capture_output=True, text=True).stdout)
    check("kubectl dr version: the job image it deploys", ver["jobImage"] == images["reference"], ver)

    # Mirror into a real registry; the packaged chart, air-gapped, points at what it serves.
    proc, host = registry(tmp)
    try:
        oci = os.path.join(dist, f"dr-job_{version}_linux_amd64.oci.tar")
        out = subprocess.run([dr, "images", "mirror", "--to", f"{host}/mirror", "--from-archive", oci, "--plain-http", "-o", "json"],
                             capture_output=True, text=True)
        check("images mirror: into the loopback registry", out.returncode == 0, out.stderr)
        report = json.loads(out.stdout) if out.returncode == 0 else {}
        check("images mirror: the digest kubectl dr images prints", report.get("digest") == digest, report)
        # The chart beside the image, as Helm pulls it: the same bytes as dist's package.
        check("images mirror: the chart, with the digest kubectl dr images prints",
              report.get("chart", {}).get("digest") == chart_listed["digest"] and chart_listed["kind"] == "chart", (report, chart_listed))
        pulled_dir = os.path.join(tmp, "pulled")
        os.makedirs(pulled_dir)
        try:
            helm_registry.pull(f"oci://{host}/mirror/dr-restore", version=version, plain_http=True, destination=pulled_dir)
            pulled_chart = os.path.join(pulled_dir, f"dr-restore-{version}.tgz")
            check("helm pull oci://: the chart dist packaged, byte for byte", sha256(pulled_chart) == sha256(os.path.join(dist, f"dr-restore-{version}.tgz")))
        except Exception as e:  # Helm's error, as a failed check
            pulled_chart = os.path.join(dist, f"dr-restore-{version}.tgz")
            check("helm pull oci://: the chart dist packaged, byte for byte", False, e)
        chart = Chart.load(pulled_chart)
        rendered = chart.render({"sourceClusterID": "c", "profile": {"name": "p"}, "airgapped": {"repository": f"{host}/mirror"},
                                 "image": {"digest": digest}}, name="k10-restore", namespace="kasten-io", is_install=True)
        job = next(d for path, text in rendered.items() if not path.endswith("NOTES.txt")
                   for d in yaml.safe_load_all(text) if d and d.get("kind") == "Job")
        image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        check("chart: air-gapped image reference", image == f"{host}/mirror/dr-job@{digest}", image)
        repo, _, reference = image.partition("/")[2].partition("@")
        status, served, _ = manifest(host, repo, reference)
        check("registry: serves the chart's image, digest matching", status == 200 and served == digest, (status, served))
        status, served, _ = manifest(host, "mirror/dr-job", version)
        check("registry: serves it by tag too", status == 200 and served == digest, (status, served))
        # What a node would do: pull the chart's reference from the mirror and run it.
        env = dict(os.environ, STORAGE_DRIVER="vfs", BUILDAH_ISOLATION="chroot")
        pulled = subprocess.run(["buildah", "from", "--quiet", "--tls-verify=false", f"docker://{image}"], capture_output=True, text=True, env=env)
        check("pulled from the mirror by the chart's reference", pulled.returncode == 0, pulled.stderr)
        if pulled.returncode == 0:
            ctr = pulled.stdout.strip()
            run = subprocess.run(["buildah", "run", ctr, "--", "/dr-job", "self-check"], capture_output=True, text=True, env=env)
            subprocess.run(["buildah", "rm", ctr], capture_output=True, env=env)
            check("the pulled image passes its self-check", run.returncode == 0 and '"ok":true' in run.stdout, run.stdout + run.stderr)
    finally:
        proc.kill()
        proc.wait()

    if failures:
        print(f"{len(failures)} release checks failed: {failures}")
        sys.exit(1)
    print("all release checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
