# Shared by the scripts: where builds go, which tools they need, and how to get them.
# The cargo target dir lives outside the clone so CI runs and fresh clones reuse builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lucy-target}"
export PATH="$HOME/.cargo/bin:$PATH"
LUCY="$CARGO_TARGET_DIR/release/lucy"
# The native build always has the `train` feature: one feature set, one build of burn.
FEATURES=(--features train)
TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p}' Cargo.lock)

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
  fi
}

# The weights bundle (weights/): fetched with npm and built once, then cached.
ensure_weights() {
  cargo build --release --quiet "${FEATURES[@]}" --bin lucy
  "$LUCY" --weights weights import
}

# trunk and wasm-bindgen-cli at pinned versions (trunk cannot download its tools here).
ensure_trunk() {
  if ! trunk --version 2>/dev/null | grep -qF "$TRUNK_VERSION"; then
    cargo install trunk --version "$TRUNK_VERSION" --locked
  fi
  if ! wasm-bindgen --version 2>/dev/null | grep -qF "$WASM_BINDGEN_VERSION"; then
    # Not --locked: its lockfile pins a crate the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

# dist/: the static site (wasm app, assets, the weights the page needs).
build_site() {
  ensure_wasm_target
  ensure_trunk
  ensure_weights
  TRUNK_OFFLINE=true TRUNK_SKIP_VERSION_CHECK=true trunk build --release
}

# Debian's Chromium and the test driver (playwright-core, pinned in its package-lock.json).
ensure_browser() {
  if [ ! -x /usr/bin/chromium ]; then
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm ci --no-audit --no-fund)
  fi
}

# Test photos without a licence to copy live beside the project, in ../shared (never in it).
# The tests find them there; a checkout elsewhere can point at them with LUCY_SHARED.
if [ -z "${LUCY_SHARED:-}" ]; then
  for candidate in "$PWD/../shared" /work/shared; do
    if [ -d "$candidate/fixtures/resnet50-reference" ]; then LUCY_SHARED=$(cd "$candidate" && pwd); break; fi
  done
fi
if [ -n "${LUCY_SHARED:-}" ]; then
  export LUCY_SHARED_FIXTURES="${LUCY_SHARED_FIXTURES:-$LUCY_SHARED/fixtures/resnet50-reference}"
  export LUCY_CATSDOGS="${LUCY_CATSDOGS:-$LUCY_SHARED/data/catsdogs}"
fi
