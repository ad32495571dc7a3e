#!/usr/bin/env python3
"""The checks of scripts/check-dist; prints one line per check and exits 1 if any failed."""
import json
import os
import socket
import shutil
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
ARCHES = ["amd64", "arm64"]
# readelf's name of each architecture's machine.
MACHINES = {"amd64": "X86-64", "arm64": "AArch64"}
INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE = "application/vnd.oci.image.manifest.v1+json"
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
    # An image or an index: asked for an image only, the registry answers an index with one
    # of its images.
    req = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{reference}",
                                 headers={"Accept": f"{IMAGE}, {INDEX}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Docker-Content-Digest"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, None, b""


def run(arch, args, **kw):
    """Runs a binary of `arch` here: arm64 under qemu-aarch64-static (Debian's qemu-user-static)."""
    return subprocess.run((["qemu-aarch64-static"] if arch == "arm64" else []) + args, capture_output=True, text=True, **kw)


def backup_and_restore(tmp, bins):
    """The offline loop of scripts/demo with each architecture's plugin, crossed: a restore point
    one architecture writes (encrypted, compressed), the other verifies and exports (decrypts,
    decompresses: the offline restore), and both exports are the same YAML."""
    work = os.path.join(tmp, "loop")
    os.makedirs(work)
    passphrase = os.path.join(work, "passphrase")
    with open(os.path.join(work, "passphrase"), "w") as f:
        f.write("check-dist passphrase: crossed between architectures\n")
    os.chmod(passphrase, 0o600)
    exports = {}
    for writer, reader in [("amd64", "arm64"), ("arm64", "amd64")]:
        location = os.path.join(work, f"location-{writer}")
        os.makedirs(location)
        env = dict(os.environ, DR_LOCATION_PATH=location, DR_PASSPHRASE_FILE=passphrase, DR_CLUSTER_ID="5f1c0a2e-7b3d-4e8f-9a6b-0c1d2e3f4a5b")
        out = run(writer, [bins[writer]["kubectl-dr"], "backup", "--from-manifests", "examples/manifests"], env=env)
        check(f"{writer} kubectl-dr: backup --from-manifests examples/manifests", out.returncode == 0, out.stdout + out.stderr)
        out = run(reader, [bins[reader]["kubectl-dr"], "verify"], env=env)
        check(f"{reader} kubectl-dr: verify the {writer} point", out.returncode == 0, out.stdout + out.stderr)
        points = run(reader, [bins[reader]["kubectl-dr"], "restore-points", "-o", "json"], env=env)
        ids = [p["id"] for p in json.loads(points.stdout)] if points.returncode == 0 else []
        check(f"{reader} kubectl-dr: restore-points lists the {writer} point", len(ids) == 1, points.stdout + points.stderr)
        if len(ids) != 1:
            continue
        export = os.path.join(work, f"export-{writer}")
        out = run(reader, [bins[reader]["kubectl-dr"], "export", "--point", ids[0], "--output-dir", export], env=env)
        files = {}
        for root, _, names in os.walk(export):
            for n in names:
                path = os.path.join(root, n)
                files[os.path.relpath(path, export)] = open(path, "rb").read()
        check(f"{reader} kubectl-dr: export the {writer} point", out.returncode == 0 and any(n.endswith(".yaml") for n in files), out.stdout + out.stderr)
        exports[writer] = files
    if len(exports) == 2:
        # The resources' YAML is the same; restore-point.json names each point (ID, times, the
        # archive's digest under its own key) and only its counts compare.
        yaml_files = [{k: v for k, v in exports[a].items() if k.endswith(".yaml")} for a in ARCHES]
        counts = [json.loads(exports[a].get("restore-point.json", b"{}")).get("counts") for a in ARCHES]
        check("the same resources exported from either architecture's point", yaml_files[0] == yaml_files[1] and counts[0] == counts[1] is not None,
              (sorted(set(yaml_files[0]) ^ set(yaml_files[1])), counts))


def cluster_backup_and_restore(tmp, bins):
    """The arm64 release against the test API server, under qemu: a backup by its plugin, and a
    new cluster restored by its plugin and its dr-job as the Job's pod
    (plugin/tests/release_binaries.rs, ignored in the test run, which has no release yet)."""
    release = os.path.join(tmp, "arm64", "release")
    os.makedirs(release, exist_ok=True)
    for name in ["kubectl-dr", "dr-job"]:
        shutil.copy2(bins["arm64"][name], os.path.join(release, name))
    if subprocess.run(["cargo", "nextest", "--version"], capture_output=True).returncode == 0:
        cmd = ["cargo", "nextest", "run", "--release", "--workspace", "--run-ignored", "only", "-E", "binary(release_binaries)"]
    else:
        cmd = ["cargo", "test", "--release", "--workspace", "--test", "release_binaries", "--", "--ignored"]
    env = dict(os.environ, DR_RELEASE_BINARIES=release, DR_RELEASE_RUNNER=shutil.which("qemu-aarch64-static") or "qemu-aarch64-static")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    check("arm64 kubectl-dr and dr-job under qemu: a cluster backed up, a new one restored through the Job (test API server)",
          out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:])


def main(dist):
    version = next(l.split('"')[1] for l in open("Cargo.toml") if l.startswith("version = "))
    tmp = tempfile.mkdtemp()

    # The archives of each architecture: static binaries of that architecture within budget.
    bins = {arch: {} for arch in ARCHES}
    for arch in ARCHES:
        for name in ["kubectl-dr", "dr-job"]:
            archive = os.path.join(dist, f"{name}_{version}_linux_{arch}.tar.gz")
            with tarfile.open(archive) as t:
                t.extractall(os.path.join(tmp, arch, name), filter="data")
            path = os.path.join(tmp, arch, name, name)
            bins[arch][name] = path
            # No program interpreter and no shared library (readelf reads either architecture);
            # for amd64 also ldd: "not a dynamic executable", or "statically linked" for a
            # static PIE.
            elf = subprocess.run(["readelf", "-hW", "-lW", "-dW", path], capture_output=True, text=True).stdout
            static = "INTERP" not in elf and "NEEDED" not in elf
            ldd = subprocess.run(["ldd", path], capture_output=True, text=True) if arch == "amd64" else None
            if ldd:
                static = static and ("not a dynamic executable" in ldd.stdout + ldd.stderr or "statically linked" in ldd.stdout)
            check(f"{arch} {name}: statically linked", static, (ldd.stdout + ldd.stderr) if ldd else elf)
            machine = next((l.split(":", 1)[1].strip() for l in elf.splitlines() if l.strip().startswith("Machine:")), "")
            check(f"{arch} {name}: an {MACHINES[arch]} binary", MACHINES[arch] in machine, machine)
            size = os.path.getsize(path)
            check(f"{arch} {name}: {size / 1e6:.1f} MB, within 25 MB", size <= BUDGET, size)

    # Each architecture's binaries run (arm64 under qemu): dr-job's self-check (the format's
    # known-answer test, the CA bundle), the plugin names the same pinned image.
    for arch in ARCHES:
        out = run(arch, [bins[arch]["dr-job"], "self-check"])
        check(f"{arch} dr-job: self-check passes", out.returncode == 0 and '"ok":true' in out.stdout, out.stdout + out.stderr)
        out = run(arch, [bins[arch]["kubectl-dr"], "images", "-o", "json"])
        check(f"{arch} kubectl-dr: images names what the amd64 plugin names", out.returncode == 0 and out.stdout ==
              subprocess.run([bins["amd64"]["kubectl-dr"], "images", "-o", "json"], capture_output=True, text=True).stdout, out.stdout + out.stderr)
    backup_and_restore(tmp, bins)
    cluster_backup_and_restore(tmp, bins)

    # kubectl's completer for `kubectl dr <TAB>`, beside the plugin: it answers from the binary
    # next to it, in cobra's format, with no kubectl-dr on the PATH.
    completer = os.path.join(tmp, "amd64", "kubectl-dr", "kubectl_complete-dr")
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
    arches = sorted(p["selector"]["matchLabels"]["arch"] for p in krew["spec"]["platforms"])
    check("krew: a platform for each architecture", arches == sorted(ARCHES) and all(
        p["selector"]["matchLabels"]["os"] == "linux" and p["uri"].endswith(f"_linux_{p['selector']['matchLabels']['arch']}.tar.gz")
        for p in krew["spec"]["platforms"]), krew["spec"]["platforms"])
    check("krew: the caveats say how to link kubectl_complete-dr", "kubectl_complete-dr" in krew["spec"].get("caveats", ""), krew["spec"])

    # The plugin names the image it was built with, by digest.
    dr = bins["amd64"]["kubectl-dr"]
    listed = json.loads(subprocess.run([dr, "images", "-o", "json"], check=True, capture_output=True, text=True).stdout)
    images, chart_listed = listed[0], listed[1]
    digest = open(os.path.join(dist, f"dr-job_{version}.digest")).read().strip()
    check("kubectl dr images: the image built with it, pinned", images["digest"] == digest and images["tag"] == version, images)
    ver = json.loads(subprocess.run([dr, "version", "-o", "json"], check=True, capture_output=True, text=True).stdout)
    check("kubectl dr version: the job image it deploys", ver["jobImage"] == images["reference"], ver)

    # Mirror into a real registry; the packaged chart, air-gapped, points at what it serves.
    proc, host = registry(tmp)
    try:
        oci = os.path.join(dist, f"dr-job_{version}.oci.tar")
        out = subprocess.run([dr, "images", "mirror", "--to", f"{host}/mirror", "--from-archive", oci, "--plain-http", "-o", "json"],
                             capture_output=True, text=True)
        check("images mirror: into the loopback registry", out.returncode == 0, out.stderr)
        report = json.loads(out.stdout) if out.returncode == 0 else {}
        check("images mirror: the digest kubectl dr images prints", report.get("digest") == digest, report)
        check("images mirror: an index over linux/amd64 and linux/arm64", report.get("platforms") == [f"linux/{a}" for a in ARCHES], report)
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
        status, served, body = manifest(host, "mirror/dr-job", version)
        check("registry: serves it by tag too", status == 200 and served == digest, (status, served))
        # The index and each image in it.
        index = json.loads(body) if status == 200 else {}
        platforms = {m.get("platform", {}).get("architecture"): m for m in index.get("manifests", [])}
        check("registry: the index has an image for each architecture", index.get("mediaType") == INDEX and sorted(platforms) == sorted(ARCHES)
              and all(m["platform"]["os"] == "linux" for m in platforms.values()), index)
        for arch, m in sorted(platforms.items()):
            status, served, body = manifest(host, "mirror/dr-job", m["digest"])
            config = json.loads(body).get("config", {}) if status == 200 else {}
            blob = urllib.request.urlopen(f"http://{host}/v2/mirror/dr-job/blobs/{config.get('digest')}", timeout=10).read() if config else b"{}"
            check(f"registry: serves the {arch} image, its config saying {arch}", status == 200 and served == m["digest"]
                  and json.loads(blob).get("architecture") == arch, (status, served, m))
        # What a node of each architecture would do: pull the chart's reference from the mirror
        # and run it (the arm64 image under qemu-aarch64-static, bound into the container).
        env = dict(os.environ, STORAGE_DRIVER="vfs", BUILDAH_ISOLATION="chroot")
        for arch in ARCHES:
            pulled = subprocess.run(["buildah", "from", "--quiet", "--tls-verify=false", "--arch", arch, f"docker://{image}"],
                                    capture_output=True, text=True, env=env)
            check(f"{arch}: pulled from the mirror by the chart's reference", pulled.returncode == 0, pulled.stderr)
            if pulled.returncode != 0:
                continue
            ctr = pulled.stdout.strip()
            qemu = "/usr/bin/qemu-aarch64-static"
            bind = ["--volume", f"{qemu}:{qemu}:ro"] if arch == "arm64" else []
            inspect = subprocess.run(["buildah", "inspect", "--format", "{{.OCIv1.Architecture}}", ctr], capture_output=True, text=True, env=env)
            out = subprocess.run(["buildah", "run", *bind, ctr, "--", *([qemu] if arch == "arm64" else []), "/dr-job", "self-check"],
                                 capture_output=True, text=True, env=env)
            subprocess.run(["buildah", "rm", ctr], capture_output=True, env=env)
            check(f"{arch}: the pulled image is the {arch} one and passes its self-check, as user 65532", inspect.stdout.strip() == arch
                  and out.returncode == 0 and '"ok":true' in out.stdout and '"uid":65532' in out.stdout, inspect.stdout + out.stdout + out.stderr)
    finally:
        proc.kill()
        proc.wait()

    if failures:
        print(f"{len(failures)} release checks failed: {failures}")
        sys.exit(1)
    print("all release checks passed")


if __name__ == "__main__":
    main(sys.argv[1])
