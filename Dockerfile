# The job image, for docker and podman users:
#   docker build -t REGISTRY/PATH/dr-job:0.1.0 .        (or: podman build ...)
# The same image as the linux/amd64 one scripts/image builds without a daemon (CI builds and
# smoke-tests that one, and the linux/arm64 one, and the index over both): the static (musl)
# dr-job in the dist profile on scratch, a CA bundle for S3, Vault, AWS Secrets Manager and
# STS over TLS, user 65532, /dr-job as the entrypoint.
# Build arguments: VERSION and REVISION for the labels (scripts/dist passes them).

ARG RUST_VERSION=1.89
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --locked --profile dist --target x86_64-unknown-linux-musl -p dr-job \
 && cp target/x86_64-unknown-linux-musl/dist/dr-job /dr-job \
 && /dr-job self-check

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="dr-job" \
      org.opencontainers.image.description="kubectl-dr's in-cluster job: backup and restore" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /dr-job /dr-job
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
ENTRYPOINT ["/dr-job"]
