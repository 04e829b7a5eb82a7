# checkit: multi-stage build, small non-root runtime image.
#   docker build -t checkit .
#   docker run -p 9115:9115 -v checkit-data:/var/lib/checkit checkit
FROM rust:1-bookworm AS build
WORKDIR /src
# The image has no .git: pass the revision for checkit_build_info
# (docker build --build-arg CHECKIT_REVISION=$(git rev-parse --short=12 HEAD) .).
ARG CHECKIT_REVISION=unknown
ENV CHECKIT_REVISION=${CHECKIT_REVISION}
# Cargo.toml names the `it` test and the `bridge_intake` bench by path, and
# cargo refuses a manifest whose targets are missing, so they are copied too
# (tests/it/ops_docker.rs lays out exactly this set and runs cargo on it).
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY config config
COPY benches benches
COPY tests tests
RUN cargo build --release --locked --bin checkit

FROM debian:bookworm-slim
# ca-certificates is left unpinned on purpose: it must follow Debian's updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 checkit \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/checkit --create-home checkit
COPY --from=build /src/target/release/checkit /usr/local/bin/checkit
COPY config/docker.yml /etc/checkit/checkit.yml
USER 10001:10001
WORKDIR /var/lib/checkit
VOLUME /var/lib/checkit
EXPOSE 9115
# ICMP probes need CAP_NET_RAW or net.ipv4.ping_group_range covering uid 10001.
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["checkit", "healthcheck", "--url", "http://127.0.0.1:9115/-/healthy"]
ENTRYPOINT ["checkit"]
CMD ["--config.file=/etc/checkit/checkit.yml", "--web.listen-address=:9115"]
