# Shared by scripts/image and scripts/dist: the static (musl) distribution build.
# Source it; it defines ensure_static_toolchain, static_build, check_static and target_dir.
source "$(dirname "${BASH_SOURCE[0]}")/debian.sh"

DIST_TARGET=${DIST_TARGET:-x86_64-unknown-linux-musl}
DIST_DIR=${DIST_DIR:-dist}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
BUDGET_BYTES=$((25 * 1000 * 1000))

# Installs what the static build needs when it is missing: the Rust musl target (rustup), a
# musl C compiler for aws-lc and zstd (Debian's musl-tools), and, with "image", buildah and
# the CA bundle the image ships (Debian's ca-certificates).
ensure_static_toolchain() {
  local want=(musl-tools)
  [ "${1:-}" = image ] && want+=(buildah ca-certificates)
  rustup target list --installed | grep -qx "$DIST_TARGET" || rustup target add "$DIST_TARGET"
  ensure_debian_packages "${want[@]}"
}

# static_build PACKAGE...: builds the packages' binaries in the dist profile for $DIST_TARGET,
# checks each is static and within budget. Build settings (DR_IMAGE_REPOSITORY, ...) come from
# the environment.
static_build() {
  local args=()
  for p in "$@"; do args+=(-p "$p"); done
  cargo build --quiet --locked --profile dist --target "$DIST_TARGET" "${args[@]}"
}

# check_static BINARY: no program interpreter and no shared library needed (ldd says "not a
# dynamic executable", or "statically linked" for the static-PIE binaries Rust's musl target
# makes, which keep address-space randomisation), and at most 25 MB.
check_static() {
  local bin=$1 size
  if readelf -lW "$bin" | grep -q INTERP || readelf -dW "$bin" | grep -q NEEDED; then
    echo "$bin is dynamically linked:" >&2
    ldd "$bin" >&2 || true
    exit 1
  fi
  size=$(stat -c %s "$bin")
  if [ "$size" -gt "$BUDGET_BYTES" ]; then
    echo "$bin is $size bytes, over the budget of $BUDGET_BYTES" >&2
    exit 1
  fi
  echo "$(basename "$bin"): static, $size bytes ($((size / 1000 / 1000)) MB of the 25 MB budget)" >&2
}

target_dir() {
  echo "${CARGO_TARGET_DIR:-target}/$DIST_TARGET/dist"
}
