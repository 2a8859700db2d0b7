//! Builds ferry's eBPF programs (`ebpf/programs`) for `bpfel-unknown-none` with the nightly
//! toolchain and bpf-linker, so a plain `cargo build` produces the object the L4 path loads.
//! `scripts/setup.sh` installs nightly `rust-src` and bpf-linker 0.10.0.

fn main() -> aya_build::Result<()> {
    let programs = aya_build::Package {
        name: "ferry-ebpf-programs",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf/programs"),
        ..Default::default()
    };
    aya_build::build_ebpf([programs], aya_build::Toolchain::default())
}
