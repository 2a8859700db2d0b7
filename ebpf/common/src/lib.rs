//! Keys and values of the maps shared by ferry's eBPF programs (kernel) and the L4 programmer
//! (userspace). `#[repr(C)]`, explicit padding, sizes asserted: both sides must agree byte for
//! byte. Fields in network byte order end in `_be`.
//!
//! ```text
//!  SERVICES  (frontend address, port, protocol, slot) ─▶ slot 0: count, flags, service id
//!                                                       slot n: backend id
//!  BACKENDS  backend id ─▶ address, port
//!  MEMBERS   (service id, backend id) ─▶ slot                  (membership, for affinity)
//!  AFFINITY  (client, service id) ─▶ backend id, last use          (LRU)
//!  SOCK_REVNAT (socket cookie, backend) ─▶ frontend                (LRU, socket LB replies)
//!  CT        packet tuple ─▶ NAT state                             (LRU, TC NodePort)
//! ```

#![no_std]

use core::mem::size_of;

pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Slot 0 flag: remember each client's backend (`sessionAffinity: ClientIP`).
pub const FLAG_AFFINITY: u16 = 1;
/// Slot 0 flag: traffic policy `Local` (external frontends): keep the client address.
pub const FLAG_LOCAL: u16 = 2;

/// Backend flag: on this node.
pub const BACKEND_LOCAL: u8 = 1;

/// A frontend (address, port, protocol) and a slot of its backend list.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr_be: u32,
    pub port_be: u16,
    pub proto: u8,
    pub _pad0: u8,
    /// 0: the service entry; 1..=count: backends.
    pub slot: u16,
    pub _pad1: [u8; 2],
}
const _: () = assert!(size_of::<ServiceKey>() == 12);

impl ServiceKey {
    pub const fn new(addr_be: u32, port_be: u16, proto: u8, slot: u16) -> Self {
        ServiceKey {
            addr_be,
            port_be,
            proto,
            _pad0: 0,
            slot,
            _pad1: [0; 2],
        }
    }
}

/// Slot 0: `count` backends, flags, the service id and the affinity timeout.
/// Slot n: `backend_id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceValue {
    pub backend_id: u32,
    pub service_id: u32,
    pub affinity_timeout_s: u32,
    pub count: u16,
    pub flags: u16,
}
const _: () = assert!(size_of::<ServiceValue>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend {
    pub addr_be: u32,
    pub port_be: u16,
    pub proto: u8,
    pub flags: u8,
}
const _: () = assert!(size_of::<Backend>() == 8);

/// A backend of a service's list: lets an affinity entry be checked in O(1) (a backend that
/// left the service is not used, even if the entry is still fresh).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberKey {
    pub service_id: u32,
    pub backend_id: u32,
}
const _: () = assert!(size_of::<MemberKey>() == 8);

/// Who a client is for affinity: a network namespace cookie (socket LB) or an IPv4 address
/// (TC), and which service.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    pub client: u64,
    pub service_id: u32,
    /// 0: `client` is a netns cookie; 1: an IPv4 address.
    pub kind: u32,
}
const _: () = assert!(size_of::<AffinityKey>() == 16);

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityValue {
    pub backend_id: u32,
    /// Milliseconds since boot (wrapping) of the last use.
    pub last_used_ms: u32,
}
const _: () = assert!(size_of::<AffinityValue>() == 8);

/// A socket and the backend it was sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockRevNatKey {
    pub cookie: u64,
    pub addr_be: u32,
    pub port_be: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<SockRevNatKey>() == 16);

/// The frontend that socket asked for.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockRevNatValue {
    pub addr_be: u32,
    pub port_be: u16,
    pub _pad: u16,
}
const _: () = assert!(size_of::<SockRevNatValue>() == 8);

/// A packet's addresses and ports as seen on the wire, for TC conntrack.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub saddr_be: u32,
    pub daddr_be: u32,
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u8,
    /// 0: a client's packet to a frontend; 1: a backend's reply.
    pub dir: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(size_of::<CtKey>() == 16);

pub const CT_FORWARD: u8 = 0;
pub const CT_REPLY: u8 = 1;

/// For a forward entry: where the connection goes (`addr`/`port`: the backend) and the source
/// it is sent from (`snat_be`, 0 when the client address is kept). For a reply entry: the
/// frontend to restore as source (`addr`/`port`) and, after SNAT, the client to restore as
/// destination (`client`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtValue {
    pub addr_be: u32,
    pub port_be: u16,
    pub client_port_be: u16,
    pub client_be: u32,
    pub snat_be: u32,
}
const _: () = assert!(size_of::<CtValue>() == 16);

/// Map names, as the programs declare them.
pub mod maps {
    pub const SERVICES: &str = "FERRY_SERVICES";
    pub const BACKENDS: &str = "FERRY_BACKENDS";
    pub const MEMBERS: &str = "FERRY_MEMBERS";
    pub const AFFINITY: &str = "FERRY_AFFINITY";
    pub const SOCK_REVNAT: &str = "FERRY_SOCK_REVNAT";
    pub const CT: &str = "FERRY_CT";
    pub const COUNTERS: &str = "FERRY_COUNTERS";
    pub const ALL: [&str; 7] = [
        SERVICES,
        BACKENDS,
        MEMBERS,
        AFFINITY,
        SOCK_REVNAT,
        CT,
        COUNTERS,
    ];
}

/// Indexes of the per-CPU counters the programs keep (why they passed a packet through).
pub mod counters {
    pub const TRANSLATED: u32 = 0;
    pub const NO_BACKEND: u32 = 1;
    pub const MAP_MISS: u32 = 2;
    pub const PARSE_ERROR: u32 = 3;
    pub const REDIRECT_ERROR: u32 = 4;
    pub const COUNT: u32 = 5;
    pub const NAMES: [&str; COUNT as usize] = [
        "translated",
        "no_backend",
        "map_miss",
        "parse_error",
        "redirect_error",
    ];
}

#[cfg(feature = "user")]
#[allow(
    unsafe_code,
    reason = "aya::Pod is an unsafe trait: the seam with aya's maps"
)]
mod user {
    // SAFETY (all impls): the types are #[repr(C)], made only of integers, with every padding
    // byte an explicit field, so any bit pattern is a valid value, as `Pod` requires.
    unsafe impl aya::Pod for super::ServiceKey {}
    unsafe impl aya::Pod for super::ServiceValue {}
    unsafe impl aya::Pod for super::Backend {}
    unsafe impl aya::Pod for super::MemberKey {}
    unsafe impl aya::Pod for super::AffinityKey {}
    unsafe impl aya::Pod for super::AffinityValue {}
    unsafe impl aya::Pod for super::SockRevNatKey {}
    unsafe impl aya::Pod for super::SockRevNatValue {}
    unsafe impl aya::Pod for super::CtKey {}
    unsafe impl aya::Pod for super::CtValue {}
}
