# syntax=docker/dockerfile:1
# One build file for every image of the platform. Build one with its stage name:
#
#   docker build --target indicator-ingest -t trust/indicator-ingest:1.2.0 .
#   (safeguarding-qa, commissioning, notifications, trustctl likewise)
#
# The builder stage runs deploy/container/build-binaries.sh, the script CI runs too, so what the images
# hold is what the tests build. Every runtime stage is distroless (glibc, CA certificates, no shell, no
# package manager) and runs as the numeric non-root user 65532; the binaries write nothing to disk, so the
# pods run with a read-only root filesystem (k8s/base).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
# Caches keep the registry and incremental build between image builds; the binaries are copied out of the
# cached target dir into /out, which is what the later stages take.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    deploy/container/build-binaries.sh --profile release /out

# The base of every runtime image: Debian 12 (the builder's glibc) with libgcc and CA certificates.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532
WORKDIR /
ENV TRUST__LOG__FORMAT=json

FROM runtime AS indicator-ingest
COPY --from=builder /out/indicator-ingest /usr/local/bin/indicator-ingest
EXPOSE 50051 9101
ENTRYPOINT ["/usr/local/bin/indicator-ingest"]

FROM runtime AS safeguarding-qa
COPY --from=builder /out/safeguarding-qa /usr/local/bin/safeguarding-qa
EXPOSE 50052 9102
ENTRYPOINT ["/usr/local/bin/safeguarding-qa"]

FROM runtime AS commissioning
COPY --from=builder /out/commissioning /usr/local/bin/commissioning
EXPOSE 50053 9103
ENTRYPOINT ["/usr/local/bin/commissioning"]

FROM runtime AS notifications
COPY --from=builder /out/notifications /usr/local/bin/notifications
EXPOSE 50054 9104
ENTRYPOINT ["/usr/local/bin/notifications"]

FROM runtime AS trustctl
COPY --from=builder /out/trustctl /usr/local/bin/trustctl
ENTRYPOINT ["/usr/local/bin/trustctl"]
