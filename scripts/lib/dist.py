#!/usr/bin/env python3
"""The release's chart package, krew manifest and checksums (called by scripts/dist).

    dist.py DIST_DIR VERSION REPOSITORY BASE_URL KUBECTL_DR ARCH...

KUBECTL_DR is a plugin this machine runs (it packages the chart); ARCH... are the release's
architectures (amd64, arm64), one krew platform each.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import helm_python as helm
from helm_python.chart import Chart

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SOURCE_REPOSITORY_LINE = "  repository: localhost/kubectl-dr/dr-job\n"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_chart(dist, version, repository, kubectl_dr):
    """The chart as the plugin embeds it (values.yaml names the release's image repository),
    linted by the Helm library, then packaged by the plugin itself: the same bytes as the layer
    of the OCI artifact `kubectl dr images mirror` pushes, so the .tgz and the registry agree."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = os.path.join(tmp, "dr-restore")
        shutil.copytree(os.path.join(ROOT, "charts", "dr-restore"), chart)
        values = os.path.join(chart, "values.yaml")
        text = open(values).read()
        assert SOURCE_REPOSITORY_LINE in text, "values.yaml names the image repository on one line"
        open(values, "w").write(text.replace(SOURCE_REPOSITORY_LINE, f"  repository: {repository}\n"))
        helm.lint(chart)
    out = subprocess.run([kubectl_dr, "images", "package-chart", "--destination", os.path.abspath(dist)],
                         check=True, capture_output=True, text=True).stdout.strip()
    packaged = Chart.load(out)
    assert packaged.version == version and packaged.values["image"]["repository"] == repository, (packaged.version, packaged.values["image"])
    return out


def krew_platform(dist, version, base_url, arch):
    archive = f"kubectl-dr_{version}_linux_{arch}.tar.gz"
    return f"""    - selector:
        matchLabels:
          os: linux
          arch: {arch}
      uri: {base_url.rstrip('/')}/{archive}
      sha256: {sha256(os.path.join(dist, archive))}
      bin: kubectl-dr
      files:
        - from: kubectl-dr
          to: .
        - from: kubectl_complete-dr
          to: .
        - from: README.md
          to: .
"""


def krew_manifest(dist, version, base_url, arches):
    # krew's index asks for a homepage; a local manifest does without (DR_HOMEPAGE sets it).
    homepage = f"  homepage: {os.environ['DR_HOMEPAGE']}\n" if os.environ.get("DR_HOMEPAGE") else ""
    platforms = "".join(krew_platform(dist, version, base_url, arch) for arch in arches)
    path = os.path.join(dist, "krew", "dr.yaml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"""apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: dr
spec:
  version: v{version}
{homepage}  shortDescription: Encrypted, immutable, point-in-time disaster recovery
  description: |
    kubectl dr backs up a cluster's state into AES-256-GCM encrypted, write-once restore
    points (S3 with Object Lock, or NFS) and restores them onto a new cluster with one
    command. The job image it deploys: kubectl dr images.
  platforms:
{platforms}  caveats: |
    kubectl dr <TAB> completes (kubectl 1.26 and later) through kubectl_complete-dr on the
    PATH, which krew does not link. Link it once beside the plugin (it follows upgrades):
      ln -sf kubectl-dr "${{KREW_ROOT:-$HOME/.krew}}/bin/kubectl_complete-dr"
""")
    return path


def main():
    dist, version, repository, base_url, kubectl_dr = sys.argv[1:6]
    arches = sys.argv[6:] or ["amd64"]
    chart = package_chart(dist, version, repository, kubectl_dr)
    print(f"chart {chart}", file=sys.stderr)
    print(f"krew manifest {krew_manifest(dist, version, base_url, arches)}", file=sys.stderr)
    names = sorted(
        n for n in os.listdir(dist)
        if n.endswith((".tar.gz", ".tgz", ".oci.tar")) and os.path.isfile(os.path.join(dist, n))
    )
    with open(os.path.join(dist, "SHA256SUMS"), "w") as f:
        for n in names:
            f.write(f"{sha256(os.path.join(dist, n))}  {n}\n")


if __name__ == "__main__":
    main()
