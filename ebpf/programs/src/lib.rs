//! Nothing here: the programs are the `ferry-ebpf` binary, built for `bpfel-unknown-none` by
//! the dataplane's build script. This library exists so the build script can depend on the
//! crate and be re-run when it changes.
#![no_std]
