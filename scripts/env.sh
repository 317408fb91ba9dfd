# Shared by the scripts: where builds go, and the Rust targets they need.
# The cargo target dir lives outside the clone so CI runs and fresh clones reuse builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lucy-target}"
LUCY="$CARGO_TARGET_DIR/release/lucy"

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
  fi
}

# The weights bundle (weights/): fetched with npm and built once, then cached.
ensure_weights() {
  cargo build --release --quiet --bin lucy
  "$LUCY" --weights weights import
}
