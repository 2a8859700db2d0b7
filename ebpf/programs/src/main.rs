//! ferry's kernel programs (built for `bpfel-unknown-none`; on the host this is an empty
//! binary so the workspace builds everywhere).
//!
//! - Socket LB (cgroup `connect4`, `sendmsg4`, `recvmsg4`, `getpeername4`): a socket that
//!   connects or sends to a Service frontend is pointed at a backend; replies and the peer name
//!   show the frontend again. No per-packet NAT.
//! - TC (`ferry_tc_ingress`, `ferry_tc_egress` on the node's interfaces): packets to a NodePort
//!   or external frontend are DNATed to a backend (SNATed to the node when the backend is on
//!   another node under `externalTrafficPolicy: Cluster`), with conntrack for the replies.
//!
//! Entry points are thin and fail open: errors pass the packet or connect through unchanged
//! and are counted.

#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
mod bpf;
