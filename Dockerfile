# ferry's container image: `docker build -t ferry .` from the repository root.
#
# Stage 1 builds the release binary, eBPF programs included (nightly's rust-src and
# bpf-linker 0.10.0, as scripts/setup.sh installs them). Stage 2 is distroless: glibc, CA
# certificates, nothing else, running as the non-root user 65532; the chart runs it as root
# only when the L4 path is on (capabilities apply to root only).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
RUN rustup toolchain install nightly --profile minimal --component rust-src \
 && cargo install bpf-linker@0.10.0 --locked
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ferry-controller --bin ferry \
 && install -m 0755 target/release/ferry /ferry \
 # The non-root user binds ports 80 and 443 through this file capability (Kubernetes has no
 # ambient capabilities); BuildKit's COPY keeps it.
 && setcap cap_net_bind_service=+ep /ferry

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /ferry /usr/local/bin/ferry
USER 65532:65532
EXPOSE 80 443 10254
ENTRYPOINT ["/usr/local/bin/ferry"]
CMD ["run"]
