# syntax=docker/dockerfile:1
# One image with every mixmon binary (mixmon-prober, mixmon-aggregator, mixmon-query, mixmon,
# mixmon-mixer-sim); deploy/k8s runs each with its name as the first argument.
#
#   docker build -t mixmon:0.1.0 .
#
# Stage 1 builds them in release mode from the lock file; stage 2 is distroless (glibc,
# CA certificates, no shell, no package manager) with nothing but the binaries, run as a
# non-root user.

FROM rust:1.95.0-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binaries are copied
# out of the cached target directory before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p mixmon-prober -p mixmon-aggregator -p mixmon-query -p mixmon -p mixmon-mixer-sim \
    && mkdir -p /out \
    && cp target/release/mixmon-prober target/release/mixmon-aggregator target/release/mixmon-query \
          target/release/mixmon target/release/mixmon-mixer-sim /out/

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/ /usr/local/bin/
# distroless' nonroot user (65532), the user the manifests run as.
USER 65532:65532
# The prober's default buffer directory; mount a volume there (the manifests mount an emptyDir).
WORKDIR /var/lib/mixmon
EXPOSE 50051 8090 9102
ENTRYPOINT []
CMD ["mixmon", "--help"]
