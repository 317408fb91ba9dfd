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
  # Trunk builds offline: fetch every crate the two wasm artefacts need first (the model's
  # burn-wgpu is behind a feature, so no native build or `cargo metadata` downloads it).
  cargo fetch --target wasm32-unknown-unknown --quiet
  TRUNK_OFFLINE=true TRUNK_SKIP_VERSION_CHECK=true trunk build --release
}

# Chromium for the browser tests and benchmarks: $CHROMIUM, else /usr/bin/chromium, installed
# with apt on Debian and Ubuntu; elsewhere the message says what to install. The test driver is
# playwright-core, pinned in tests/browser/package-lock.json.
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
ensure_browser() {
  if [ ! -x "$CHROMIUM" ]; then
    if [ "$CHROMIUM" = /usr/bin/chromium ] && command -v apt-get >/dev/null \
      && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release 2>/dev/null; then
      local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
      $sudo apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
    else
      echo "The browser tests need Chromium (or Chrome) at $CHROMIUM. Install it with your" >&2
      echo "package manager (Fedora: dnf install chromium; Arch: pacman -S chromium; macOS:" >&2
      echo "brew install --cask chromium) and set CHROMIUM=/path/to/the/binary." >&2
      return 1
    fi
  fi
  if [ ! -d tests/browser/node_modules/playwright-core ]; then
    (cd tests/browser && npm ci --no-audit --no-fund)
  fi
}

# Test photos without a licence to copy live beside the project, in ../shared (never in it);
# a checkout elsewhere points at them with LUCY_SHARED. Without them, the tests that need them
# are named and skipped (see scripts/test).
export LUCY_SHARED="${LUCY_SHARED:-$(cd .. && pwd)/shared}"
have_shared() {
  [ -d "$LUCY_SHARED/fixtures/resnet50-reference" ] && [ -d "$LUCY_SHARED/data/catsdogs/train" ]
}

# Two builds need a nightly compiler, pinned so a new nightly never breaks the suite: the
# threaded model (scripts/build_threads rebuilds std with atomics, from rust-src) and fuzzing.
NIGHTLY=nightly-2026-05-20
THREADS_TOOLCHAIN="$NIGHTLY"
ensure_threads_toolchain() {
  if ! rustup run "$THREADS_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$THREADS_TOOLCHAIN" --profile minimal
  fi
  if ! rustup component list --toolchain "$THREADS_TOOLCHAIN" --installed | grep -q '^rust-src'; then
    rustup component add rust-src --toolchain "$THREADS_TOOLCHAIN"
  fi
}

# Fuzzing (cargo-fuzz, libFuzzer with AddressSanitizer) needs a nightly compiler: pinned, so a
# new nightly never breaks the suite. Its builds get their own target dir (other flags).
FUZZ_TOOLCHAIN="$NIGHTLY"
CARGO_FUZZ_VERSION=0.13.2
FUZZ_TARGET_DIR="$CARGO_TARGET_DIR/fuzz"
ensure_fuzz() {
  if ! rustup run "$FUZZ_TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$FUZZ_TOOLCHAIN" --profile minimal
  fi
  if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
  fi
}
