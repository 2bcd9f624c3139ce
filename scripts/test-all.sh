#!/usr/bin/env bash
# Runs every check lopper has, on a fresh Debian 12 machine with only rustup installed:
# installs what is missing (the aarch64 cross toolchain, qemu), then
#   1. cargo fmt --check
#   2. cargo clippy --all-targets -D warnings (default and no_std features)
#   3. the workspace tests on the host, with the ONNX test data (Debian's libonnx-testdata),
#      the onnx wheel's architecture models, the PP-OCR classifier and onnxruntime as the
#      reference (pip packages in target/test-venv)
#   4. the runtime's tests for aarch64-unknown-linux-gnu under qemu (NEON code paths)
#   5. bare-metal builds of lopper-runtime for aarch64-unknown-none and thumbv7em-none-eabihf
# The bench-only crate `benches/` (tract-onnx, for scripts/bench-models.sh) is left out: it
# takes about 9 minutes to build and ships nothing.
# Usage: scripts/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# --- toolchains ---------------------------------------------------------------------------
# Debian's rustc-web (1.96) has std for arm64 through multiarch; rustup's 1.95 builds the host.
need_apt=()
[ -x /usr/bin/rustc ] || need_apt+=(rustc-web cargo-web rust-web-src)
[ -e /usr/lib/rustlib/aarch64-unknown-linux-gnu ] || need_apt+=(libstd-rust-web-dev:arm64)
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)
[ -d /usr/share/libonnx-testdata/data ] || need_apt+=(libonnx-testdata)
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo dpkg --add-architecture arm64
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# --- Python reference tools and model data -------------------------------------------------
venv=target/test-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnx, onnxruntime, rapidocr_onnxruntime" 2>/dev/null; then
  step "installing onnx, onnxruntime and the PP-OCR models into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q onnx onnxruntime numpy
  "$venv/bin/pip" install -q --no-deps rapidocr-onnxruntime==1.4.4
fi
site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
export LOPPER_PYTHON="$PWD/$venv/bin/python"
export LOPPER_ONNX_TESTDATA=/usr/share/libonnx-testdata/data
export LOPPER_ONNX_LIGHT="$site/onnx/backend/test/data/light"
export LOPPER_PPOCR_CLS="$site/rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"

HOST_CARGO="cargo"
# A one-off build gains nothing from incremental caches, which would take another GB of disk.
export CARGO_INCREMENTAL=0
DEB=(env RUSTC=/usr/bin/rustc /usr/bin/cargo)

# --- host checks ---------------------------------------------------------------------------
step "cargo fmt --check"
$HOST_CARGO fmt --all --check

step "cargo clippy (all targets, default features)"
$HOST_CARGO clippy --workspace --exclude lopper-benches --all-targets -- -D warnings
step "cargo clippy (lopper-runtime without std)"
$HOST_CARGO clippy -p lopper-runtime --no-default-features --all-targets -- -D warnings

step "workspace tests (x86_64)"
$HOST_CARGO test --workspace --exclude lopper-benches

# --- aarch64 under qemu ---------------------------------------------------------------------
# `-L /` makes qemu use the arm64 multiarch glibc that libstd-rust-web-dev:arm64 pulled in;
# with the cross glibc in /usr/aarch64-linux-gnu, spawning a thread hangs.
step "lopper-runtime tests for aarch64-unknown-linux-gnu under qemu"
CARGO_TARGET_DIR=target-debian "${DEB[@]}" test -p lopper-runtime --lib --tests \
  --target aarch64-unknown-linux-gnu \
  --config 'target.aarch64-unknown-linux-gnu.linker="aarch64-linux-gnu-gcc"' \
  --config 'target.aarch64-unknown-linux-gnu.runner="qemu-aarch64-static -L /"'

# --- bare metal -----------------------------------------------------------------------------
for target in aarch64-unknown-none thumbv7em-none-eabihf; do
  step "lopper-runtime, no default features, for $target (no std available)"
  CARGO_TARGET_DIR=target-debian RUSTC_BOOTSTRAP=1 "${DEB[@]}" build -p lopper-runtime \
    --no-default-features -Zbuild-std=core,alloc --target "$target"
done

step "all checks passed"
