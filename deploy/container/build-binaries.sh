#!/usr/bin/env bash
# Build the binaries of the platform's container images and copy them to one folder. The Dockerfile's
# builder stage runs exactly this script, and so does CI (deploy/local/test.sh), so the image's build is
# checked on machines without a container engine.
#
# Usage: deploy/container/build-binaries.sh [--profile release|dev] [OUT_DIR]
#        deploy/container/build-binaries.sh --list      # the binaries, one a line
#
#   --profile  cargo profile (default release, what the images ship). CI builds the same binaries from the
#              same sources and Cargo.lock with the dev profile: it reuses the test build and saves minutes.
#   OUT_DIR    where the binaries go (default target/container-bin).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# One image per binary: the four services and the operator CLI.
BINARIES=(indicator-ingest safeguarding-qa commissioning notifications trustctl)

profile=release
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --list)
            printf '%s\n' "${BINARIES[@]}"
            exit 0
            ;;
        --profile)
            [[ $# -ge 2 ]] || { echo "build-binaries: --profile needs a value (release or dev)" >&2; exit 2; }
            profile="$2"
            shift 2
            ;;
        --profile=*)
            profile="${1#--profile=}"
            shift
            ;;
        -*)
            echo "build-binaries: unknown option $1 (see the usage at the top of this script)" >&2
            exit 2
            ;;
        *)
            [[ -z $out ]] || { echo "build-binaries: one OUT_DIR only (got $out and $1)" >&2; exit 2; }
            out="$1"
            shift
            ;;
    esac
done

case "$profile" in
    release) profile_dir=release ;;
    dev) profile_dir=debug ;;
    *)
        echo "build-binaries: profile must be release or dev, not $profile" >&2
        exit 2
        ;;
esac

target_dir="${CARGO_TARGET_DIR:-target}"
out="${out:-$target_dir/container-bin}"

packages=()
for binary in "${BINARIES[@]}"; do
    packages+=(-p "$binary" --bin "$binary")
done

echo "==> cargo build --locked --profile $profile ${packages[*]}"
cargo build --locked --profile "$profile" "${packages[@]}"

mkdir -p "$out"
for binary in "${BINARIES[@]}"; do
    install -m 0755 "$target_dir/$profile_dir/$binary" "$out/$binary"
done
echo "==> built into $out: ${BINARIES[*]}"
