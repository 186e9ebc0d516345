# syntax=docker/dockerfile:1
# ray-history-collector image. Build from the repository root:
#   docker build -f docker/collector.Dockerfile -t ray-history-collector .
FROM rust:1.95-bookworm AS build
# aws-lc-sys (TLS crypto) builds its C code with cmake and clang.
RUN apt-get update && apt-get install -y --no-install-recommends cmake clang && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ray-history-collector --bin ray-history-collector \
    && cp target/release/ray-history-collector /ray-history-collector

FROM gcr.io/distroless/cc-debian12
COPY --from=build /ray-history-collector /usr/local/bin/ray-history-collector
# Ray images run as uid 1000 (user ray, group users): same owner as the files it uploads.
USER 1000:100
ENTRYPOINT ["/usr/local/bin/ray-history-collector"]
