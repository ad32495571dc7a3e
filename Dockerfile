# Placeholder until packaging (issue #4): one static binary on distroless, non-root.
# Build the binary first: cargo build --release -p dr-job --target x86_64-unknown-linux-musl
FROM gcr.io/distroless/static-debian12:nonroot
COPY target/x86_64-unknown-linux-musl/release/dr-job /dr-job
USER 65532:65532
ENTRYPOINT ["/dr-job"]
