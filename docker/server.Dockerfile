# syntax=docker/dockerfile:1
# ray-history-server image. Build from the repository root:
#   docker build -f docker/server.Dockerfile -t ray-history-server .
FROM rust:1.95-bookworm AS build
# aws-lc-sys (TLS crypto) builds its C code with cmake and clang.
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ray-history-server --bin ray-history-server \
    && cp target/release/ray-history-server /ray-history-server

FROM gcr.io/distroless/cc-debian12
COPY --from=build /ray-history-server /usr/local/bin/ray-history-server
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ray-history-server"]
