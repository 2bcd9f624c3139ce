#!/usr/bin/env bash
# Runs every check lopper has, on a fresh Debian 12 machine with only rustup installed:
# installs what is missing (the aarch64 cross toolchain, qemu), then
#   1. cargo fmt --check
#   2. cargo clippy --all-targets -D warnings (default and no_std features)
#   3. the workspace tests on the host
#   4. the runtime's tests for aarch64-unknown-linux-gnu under qemu (NEON code paths)
#   5. bare-metal builds of lopper-runtime for aarch64-unknown-none and thumbv7em-none-eabihf
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
if [ ${#need_apt[@]} -gt 0 ]; then
  step "installing ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo dpkg --add-architecture arm64
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

HOST_CARGO="cargo"
DEB=(env RUSTC=/usr/bin/rustc /usr/bin/cargo)

# --- host checks ---------------------------------------------------------------------------
step "cargo fmt --check"
$HOST_CARGO fmt --all --check

step "cargo clippy (all targets, default features)"
$HOST_CARGO clippy --workspace --all-targets -- -D warnings
step "cargo clippy (lopper-runtime without std)"
$HOST_CARGO clippy -p lopper-runtime --no-default-features --all-targets -- -D warnings

step "workspace tests (x86_64)"
$HOST_CARGO test --workspace

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
