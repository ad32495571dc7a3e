# Shared by scripts/image and scripts/dist: the static (musl) distribution build, for each
# release architecture. Source it; it defines ensure_static_toolchain, static_build,
# check_static, run_arch, rust_target and target_dir.
source "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

# The release's architectures (Debian and OCI names): linux/amd64 and linux/arm64.
DIST_ARCHES=${DIST_ARCHES:-amd64 arm64}
DIST_DIR=${DIST_DIR:-dist}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
BUDGET_BYTES=$((25 * 1000 * 1000))
# The arm64 cross build's C compiler (zig, through cargo-zigbuild), from PyPI, pinned.
DIST_VENV=${DIST_VENV:-.venv-dist}

# rust_target ARCH: the Rust target triple of a release architecture.
rust_target() {
  case $1 in
    amd64) echo x86_64-unknown-linux-musl ;;
    arm64) echo aarch64-unknown-linux-musl ;;
    *) echo "unknown architecture $1 (amd64 or arm64)" >&2; exit 2 ;;
  esac
}

# Installs what the static build needs when it is missing: the Rust musl targets (rustup); for
# amd64 a musl C compiler for aws-lc and zstd (Debian's musl-tools); for arm64 the cross C
# compiler (PyPI's ziglang and cargo-zigbuild, in $DIST_VENV, from
# scripts/dist-requirements.txt) and qemu-user-static to run the arm64 binaries here; and,
# with "image", buildah and the CA bundle the image ships (Debian's ca-certificates).
ensure_static_toolchain() {
  local want=() arch target
  [ "${1:-}" = image ] && want+=(buildah ca-certificates)
  for arch in $DIST_ARCHES; do
    target=$(rust_target "$arch")
    rustup target list --installed | grep -qx "$target" || rustup target add "$target" >&2
    case $arch in
      amd64) want+=(musl-tools) ;;
      arm64) want+=(qemu-user-static) ;;
    esac
  done
  ensure_debian_packages "${want[@]}"
  if [[ " $DIST_ARCHES " == *" arm64 "* ]] && ! cmp -s scripts/dist-requirements.txt "$DIST_VENV/requirements.txt"; then
    rm -rf "$DIST_VENV"
    python3 -m venv "$DIST_VENV"
    "$DIST_VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/dist-requirements.txt >&2
    cp scripts/dist-requirements.txt "$DIST_VENV/requirements.txt"
  fi
}

# static_build ARCH PACKAGE... [--bin=NAME]: builds the packages' binaries (only NAME with
# --bin; the packages still resolve features together, so a later build of the rest reuses
# every dependency) in the dist profile for ARCH.
# amd64 with cargo and musl-gcc; arm64 with cargo-zigbuild, which makes zig the C compiler and
# linker for aarch64-unknown-linux-musl (zig ships musl's headers and startup files for it).
# Build settings (DR_IMAGE_REPOSITORY, ...) come from the environment.
static_build() {
  local arch=$1 args=()
  shift
  for p in "$@"; do
    case $p in
      --bin=*) args+=("$p") ;;
      *) args+=(-p "$p") ;;
    esac
  done
  case $arch in
    amd64) cargo build --quiet --locked --profile dist --target "$(rust_target amd64)" "${args[@]}" ;;
    arm64)
      # cargo-zigbuild finds zig as `python3 -m ziglang`: the venv's python3 first on PATH.
      PATH="$(cd "$DIST_VENV" && pwd)/bin:$PATH" \
        cargo zigbuild --quiet --locked --profile dist --target "$(rust_target arm64)" "${args[@]}" ;;
  esac
}

# run_arch ARCH PROGRAM ARGS...: runs a binary of ARCH here (arm64 under qemu-aarch64-static).
run_arch() {
  local arch=$1
  shift
  case $arch in
    amd64) "$@" ;;
    arm64) qemu-aarch64-static "$@" ;;
  esac
}

# check_static BINARY: no program interpreter and no shared library needed (no INTERP program
# header, no NEEDED entry: readelf reads either architecture; ldd, when it can run the binary,
# says "not a dynamic executable", or "statically linked" for the static-PIE binaries Rust's
# musl targets make, which keep address-space randomisation), and at most 25 MB.
check_static() {
  local bin=$1 size
  if readelf -lW "$bin" | grep -q INTERP || readelf -dW "$bin" | grep -q NEEDED; then
    echo "$bin is dynamically linked:" >&2
    readelf -dW "$bin" | grep NEEDED >&2 || true
    exit 1
  fi
  size=$(stat -c %s "$bin")
  if [ "$size" -gt "$BUDGET_BYTES" ]; then
    echo "$bin is $size bytes, over the budget of $BUDGET_BYTES" >&2
    exit 1
  fi
  echo "$bin: $(readelf -hW "$bin" | sed -n 's/^ *Machine: *//p'), static, $size bytes ($((size / 1000 / 1000)) MB of the 25 MB budget)" >&2
}

# target_dir ARCH: where static_build leaves ARCH's binaries.
target_dir() {
  echo "${CARGO_TARGET_DIR:-target}/$(rust_target "$1")/dist"
}
