#!/usr/bin/env bash
# The whole check a change must pass (README's test command; also .ci/run):
# local infrastructure, formatting, lints, the Kubernetes manifests and the
# container build, then every test in the workspace.
# Extra arguments go to `cargo test`, e.g. deploy/local/test.sh -p safeguarding-qa
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

step() { printf '\n==> %s\n' "$*"; }

step "ensure local infrastructure (PostgreSQL, NATS JetStream, aiosmtpd)"
deploy/local/ensure-infra.sh

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found. Install Rust with rustup:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
    echo "then open a new shell (or 'source \$HOME/.cargo/env') and re-run." >&2
    exit 1
fi

# The integration tests create throwaway databases and streams through these.
export TRUST_TEST_ADMIN_DATABASE_URL="${TRUST_ADMIN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export TRUST_TEST_NATS_URL="${TRUST_NATS_URL:-nats://127.0.0.1:4222}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Kubernetes manifests and Dockerfile (k8s/check.sh)"
k8s/check.sh

# The Dockerfile's builder stage runs this script; CI runs it too, with the dev
# profile (same sources, Cargo.lock and features; it reuses the test build
# instead of spending minutes on an optimised one).
step "container binaries as the Dockerfile builds them (dev profile)"
deploy/container/build-binaries.sh --profile dev "${CARGO_TARGET_DIR:-target}/container-bin"

step "cargo test"
cargo test --workspace --locked "$@"
