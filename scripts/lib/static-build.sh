# Shared by scripts/image and scripts/dist: the static (musl) distribution build.
# Source it; it defines ensure_static_toolchain and static_build.

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
  local missing=()
  for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
      echo "the static build needs: ${missing[*]} (Debian/Ubuntu packages); install them first" >&2
      exit 2
    fi
    echo "installing ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# static_build PACKAGE...: builds the packages' binaries in the dist profile for $DIST_TARGET,
# checks each is static and within budget. Build settings (DR_IMAGE_REPOSITORY, ...) come from
# the environment.
static_build() {
  local args=()
  for p in "$@"; do args+=(-p "$p"); done
  cargo build --quiet --locked --profile dist --target "$DIST_TARGET" "${args[@]}"
}

# check_static BINARY: "not a dynamic executable", and at most 25 MB.
check_static() {
  local bin=$1 size
  if ldd "$bin" >/dev/null 2>&1; then
    echo "$bin is dynamically linked:" >&2
    ldd "$bin" >&2
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
