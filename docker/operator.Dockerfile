# syntax=docker/dockerfile:1
# ray-history-operator image. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ray-history-operator .
FROM rust:1.95-bookworm AS build
# aws-lc-sys (TLS crypto) builds its C code with cmake and clang.
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ray-history-operator --bin ray-history-operator \
    && cp target/release/ray-history-operator /ray-history-operator

FROM gcr.io/distroless/cc-debian12
COPY --from=build /ray-history-operator /usr/local/bin/ray-history-operator
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ray-history-operator"]
