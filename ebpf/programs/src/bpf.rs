//! The programs and their maps. See `main.rs` and `ferry_ebpf_common` for the design.

use core::ffi::c_void;
use core::mem::size_of;

use aya_ebpf::bindings::{TC_ACT_OK, TC_ACT_SHOT, bpf_fib_lookup, bpf_sock_addr};
use aya_ebpf::helpers::generated::{
    bpf_fib_lookup as fib_lookup, bpf_get_netns_cookie, bpf_get_prandom_u32, bpf_get_socket_cookie,
    bpf_ktime_get_boot_ns, bpf_redirect_neigh, bpf_set_retval,
};
use aya_ebpf::macros::{cgroup_sock_addr, classifier, map};
use aya_ebpf::maps::{HashMap, LruHashMap, PerCpuArray};
use aya_ebpf::programs::{SockAddrContext, TcContext};
use ferry_ebpf_common::{
    AffinityKey, AffinityValue, BACKEND_LOCAL, Backend, CT_FORWARD, CT_REPLY, CtKey, CtValue,
    FLAG_AFFINITY, FLAG_LOCAL, MemberKey, PROTO_TCP, PROTO_UDP, ServiceKey, ServiceValue,
    SockRevNatKey, SockRevNatValue, counters,
};

// Capacities are defaults: the loader can set others before loading.
#[map(name = "FERRY_SERVICES")]
static SERVICES: HashMap<ServiceKey, ServiceValue> = HashMap::pinned(65536, 0);
#[map(name = "FERRY_BACKENDS")]
static BACKENDS: HashMap<u32, Backend> = HashMap::pinned(65536, 0);
#[map(name = "FERRY_MEMBERS")]
static MEMBERS: HashMap<MemberKey, u32> = HashMap::pinned(131072, 0);
#[map(name = "FERRY_AFFINITY")]
static AFFINITY: LruHashMap<AffinityKey, AffinityValue> = LruHashMap::pinned(65536, 0);
#[map(name = "FERRY_SOCK_REVNAT")]
static SOCK_REVNAT: LruHashMap<SockRevNatKey, SockRevNatValue> = LruHashMap::pinned(131072, 0);
#[map(name = "FERRY_CT")]
static CT: LruHashMap<CtKey, CtValue> = LruHashMap::pinned(262144, 0);
#[map(name = "FERRY_COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(counters::COUNT, 0);

const ECONNREFUSED: i32 = 111;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const AF_INET: u8 = 2;
const BPF_F_PSEUDO_HDR: u64 = 0x10;
const BPF_F_MARK_MANGLED_0: u64 = 0x20;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;
const BPF_FIB_LKUP_RET_NO_NEIGH: i64 = 7;

fn count(index: u32) {
    if let Some(c) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: the pointer is to this CPU's slot of a per-CPU array; nothing else writes it
        // while this program runs on this CPU.
        unsafe { *c += 1 };
    }
}

/// Milliseconds since boot, wrapping every 49 days (ages are taken with `wrapping_sub`).
/// Whole seconds would be too coarse: an entry used 1.3 s ago could read as 1 s old.
fn now_ms() -> u32 {
    // SAFETY: a helper without arguments.
    (unsafe { bpf_ktime_get_boot_ns() } / 1_000_000) as u32
}

/// Picks the backend for a new connection (or datagram) of `client` to the frontend `key`:
/// the remembered one under affinity while it is fresh and still a backend of the service,
/// else one at random. `None` when the service has no backend.
fn select(key: &ServiceKey, service: &ServiceValue, client: u64, client_kind: u32) -> Option<u32> {
    if service.count == 0 {
        return None;
    }
    let affinity = AffinityKey {
        client,
        service_id: service.service_id,
        kind: client_kind,
    };
    let now = now_ms();
    if service.flags & FLAG_AFFINITY != 0 {
        // SAFETY: the value is copied out at once; LRU entries may change under us, which at
        // worst gives a stale but valid backend id that the membership check below vets.
        if let Some(remembered) = unsafe { AFFINITY.get(affinity) }.copied() {
            let member = MemberKey {
                service_id: service.service_id,
                backend_id: remembered.backend_id,
            };
            // SAFETY: read-only lookup of a plain value.
            let still_member = unsafe { MEMBERS.get(member) }.is_some();
            if still_member
                // timeoutSeconds is at most 86400 (API validation): its milliseconds fit.
                && now.wrapping_sub(remembered.last_used_ms)
                    < service.affinity_timeout_s.saturating_mul(1000)
            {
                let refreshed = AffinityValue {
                    backend_id: remembered.backend_id,
                    last_used_ms: now,
                };
                let _ = AFFINITY.insert(affinity, refreshed, 0);
                return Some(remembered.backend_id);
            }
        }
    }
    // SAFETY: a helper without arguments.
    let random = unsafe { bpf_get_prandom_u32() };
    let slot = (random % u32::from(service.count)) as u16 + 1;
    let slot_key = ServiceKey::new(key.addr_be, key.port_be, key.proto, slot);
    // SAFETY: read-only lookup, value copied out.
    let backend_id = unsafe { SERVICES.get(slot_key) }?.backend_id;
    if service.flags & FLAG_AFFINITY != 0 {
        let _ = AFFINITY.insert(
            affinity,
            AffinityValue {
                backend_id,
                last_used_ms: now,
            },
            0,
        );
    }
    Some(backend_id)
}

// ---------------------------------------------------------------------------------------------
// Socket LB

#[cgroup_sock_addr(connect4)]
pub fn ferry_connect4(ctx: SockAddrContext) -> i32 {
    sock_translate(&ctx, true)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn ferry_sendmsg4(ctx: SockAddrContext) -> i32 {
    sock_translate(&ctx, false)
}

#[cgroup_sock_addr(recvmsg4)]
pub fn ferry_recvmsg4(ctx: SockAddrContext) -> i32 {
    sock_reverse(&ctx);
    1
}

#[cgroup_sock_addr(getpeername4)]
pub fn ferry_getpeername4(ctx: SockAddrContext) -> i32 {
    sock_reverse(&ctx);
    1
}

/// Points a connect or send to a frontend at a backend. Returns 1 (proceed) or 0 (refuse,
/// with ECONNREFUSED, for a service without backends).
fn sock_translate(ctx: &SockAddrContext, connect: bool) -> i32 {
    let sa: *mut bpf_sock_addr = ctx.sock_addr;
    // SAFETY: `sa` is the context the kernel hands this program; these fields are readable
    // for connect4 and sendmsg4.
    let (addr_be, port_be, proto) =
        unsafe { ((*sa).user_ip4, (*sa).user_port as u16, (*sa).protocol as u8) };
    if proto != PROTO_TCP && proto != PROTO_UDP {
        return 1;
    }
    let key = ServiceKey::new(addr_be, port_be, proto, 0);
    // SAFETY: read-only lookup, value copied out.
    let Some(service) = (unsafe { SERVICES.get(key) }).copied() else {
        return 1;
    };
    // SAFETY: the helpers take the program context.
    let netns = unsafe { bpf_get_netns_cookie(sa as *mut c_void) };
    let Some(backend_id) = select(&key, &service, netns, 0) else {
        count(counters::NO_BACKEND);
        if connect {
            // SAFETY: valid for cgroup programs; the connect fails with ECONNREFUSED.
            unsafe { bpf_set_retval(-ECONNREFUSED) };
        }
        return 0;
    };
    // SAFETY: read-only lookup, value copied out.
    let Some(backend) = (unsafe { BACKENDS.get(backend_id) }).copied() else {
        count(counters::MAP_MISS);
        return 1;
    };
    // SAFETY: the helper takes the program context.
    let cookie = unsafe { bpf_get_socket_cookie(sa as *mut c_void) };
    let rev_key = SockRevNatKey {
        cookie,
        addr_be: backend.addr_be,
        port_be: backend.port_be,
        _pad: 0,
    };
    let rev = SockRevNatValue {
        addr_be,
        port_be,
        _pad: 0,
    };
    let _ = SOCK_REVNAT.insert(rev_key, rev, 0);
    // SAFETY: user_ip4 and user_port are writable for connect4 and sendmsg4.
    unsafe {
        (*sa).user_ip4 = backend.addr_be;
        (*sa).user_port = u32::from(backend.port_be);
    }
    count(counters::TRANSLATED);
    1
}

/// Shows the frontend a socket asked for where the kernel would show the backend.
fn sock_reverse(ctx: &SockAddrContext) {
    let sa = ctx.sock_addr;
    // SAFETY: readable fields for recvmsg4 and getpeername4.
    let (addr_be, port_be) = unsafe { ((*sa).user_ip4, (*sa).user_port as u16) };
    // SAFETY: the helper takes the program context.
    let cookie = unsafe { bpf_get_socket_cookie(sa as *mut c_void) };
    let key = SockRevNatKey {
        cookie,
        addr_be,
        port_be,
        _pad: 0,
    };
    // SAFETY: read-only lookup, value copied out.
    if let Some(front) = unsafe { SOCK_REVNAT.get(key) }.copied() {
        // SAFETY: user_ip4 and user_port are writable for recvmsg4 and getpeername4.
        unsafe {
            (*sa).user_ip4 = front.addr_be;
            (*sa).user_port = u32::from(front.port_be);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TC: NodePort and external frontends

/// Where the fields are in a packet.
struct Packet {
    saddr_be: u32,
    daddr_be: u32,
    sport_be: u16,
    dport_be: u16,
    proto: u8,
    l4: usize,
    /// Offset of the L4 checksum.
    csum: usize,
}

const IP_SADDR: usize = ETH_HLEN + 12;
const IP_DADDR: usize = ETH_HLEN + 16;
const IP_CSUM: usize = ETH_HLEN + 10;

fn parse(ctx: &TcContext) -> Option<Packet> {
    let ethertype = u16::from_be(ctx.load::<u16>(12).ok()?);
    if ethertype != ETH_P_IP {
        return None;
    }
    let ver_ihl: u8 = ctx.load(ETH_HLEN).ok()?;
    let frag: u16 = u16::from_be(ctx.load(ETH_HLEN + 6).ok()?);
    // Fragments carry no ports (or not theirs): leave them alone.
    if ver_ihl >> 4 != 4 || frag & 0x3fff != 0 {
        return None;
    }
    let proto: u8 = ctx.load(ETH_HLEN + 9).ok()?;
    let csum_at = match proto {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return None,
    };
    let l4 = ETH_HLEN + usize::from(ver_ihl & 0x0f) * 4;
    Some(Packet {
        saddr_be: ctx.load(IP_SADDR).ok()?,
        daddr_be: ctx.load(IP_DADDR).ok()?,
        sport_be: ctx.load(l4).ok()?,
        dport_be: ctx.load(l4 + 2).ok()?,
        proto,
        l4,
        csum: l4 + csum_at,
    })
}

fn l4_flags(p: &Packet, size: u64) -> u64 {
    size | if p.proto == PROTO_UDP {
        BPF_F_MARK_MANGLED_0
    } else {
        0
    }
}

fn set_addr(ctx: &TcContext, p: &Packet, at: usize, old: u32, new: u32) -> Option<()> {
    ctx.store(at, &new, 0).ok()?;
    ctx.l3_csum_replace(IP_CSUM, u64::from(old), u64::from(new), 4)
        .ok()?;
    ctx.l4_csum_replace(
        p.csum,
        u64::from(old),
        u64::from(new),
        l4_flags(p, 4) | BPF_F_PSEUDO_HDR,
    )
    .ok()
}

fn set_port(ctx: &TcContext, p: &Packet, at: usize, old: u16, new: u16) -> Option<()> {
    ctx.store(at, &new, 0).ok()?;
    ctx.l4_csum_replace(p.csum, u64::from(old), u64::from(new), l4_flags(p, 2))
        .ok()
}

/// Sends the packet out towards `daddr_be` directly: it now has this node's address as source
/// (or came in for it), which the stack would drop as a martian if it routed it.
fn redirect(ctx: &TcContext, saddr_be: u32, daddr_be: u32) -> i32 {
    // SAFETY: all-zero is a valid bpf_fib_lookup (plain integers and unions of them).
    let mut fib: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    fib.family = AF_INET;
    fib.__bindgen_anon_3.ipv4_src = saddr_be;
    fib.__bindgen_anon_4.ipv4_dst = daddr_be;
    // SAFETY: the skb pointer is the program context.
    fib.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // SAFETY: the helper is given the context and a valid, sized lookup struct.
    let found = unsafe {
        fib_lookup(
            ctx.skb.skb as *mut c_void,
            &mut fib,
            size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    if found != BPF_FIB_LKUP_RET_SUCCESS && found != BPF_FIB_LKUP_RET_NO_NEIGH {
        count(counters::REDIRECT_ERROR);
        return TC_ACT_SHOT;
    }
    // SAFETY: redirect to the interface the route lookup chose; the kernel resolves the
    // next hop's address itself.
    unsafe { bpf_redirect_neigh(fib.ifindex, core::ptr::null_mut(), 0, 0) as i32 }
}

/// Runs a TC program's logic on a parsed IPv4 TCP/UDP packet; anything else passes untouched,
/// and a packet the logic could not read is counted and passed.
#[inline(always)]
fn tc_run(ctx: &TcContext, logic: impl Fn(&TcContext, &Packet) -> Option<i32>) -> i32 {
    match parse(ctx) {
        Some(p) => logic(ctx, &p).unwrap_or_else(|| {
            count(counters::PARSE_ERROR);
            TC_ACT_OK
        }),
        None => TC_ACT_OK,
    }
}

#[classifier]
pub fn ferry_tc_ingress(ctx: TcContext) -> i32 {
    tc_run(&ctx, tc_ingress)
}

fn tc_ingress(ctx: &TcContext, p: &Packet) -> Option<i32> {
    let tuple = |dir| CtKey {
        saddr_be: p.saddr_be,
        daddr_be: p.daddr_be,
        sport_be: p.sport_be,
        dport_be: p.dport_be,
        proto: p.proto,
        dir,
        _pad: [0; 2],
    };
    // A reply from a backend on another node, to the address we SNATed to.
    // SAFETY (lookups below): read-only, values copied out.
    if let Some(reply) = unsafe { CT.get(tuple(CT_REPLY)) }.copied()
        && reply.client_be != 0
    {
        set_addr(ctx, p, IP_SADDR, p.saddr_be, reply.addr_be)?;
        set_port(ctx, p, p.l4, p.sport_be, reply.port_be)?;
        set_addr(ctx, p, IP_DADDR, p.daddr_be, reply.client_be)?;
        set_port(ctx, p, p.l4 + 2, p.dport_be, reply.client_port_be)?;
        count(counters::TRANSLATED);
        return Some(redirect(ctx, reply.addr_be, reply.client_be));
    }
    let forward = tuple(CT_FORWARD);
    let known = unsafe { CT.get(forward) }.copied();
    let (backend_addr, backend_port, snat) = match known {
        Some(ct) => (ct.addr_be, ct.port_be, ct.snat_be),
        None => {
            let key = ServiceKey::new(p.daddr_be, p.dport_be, p.proto, 0);
            let Some(service) = unsafe { SERVICES.get(key) }.copied() else {
                return Some(TC_ACT_OK);
            };
            let Some(backend_id) = select(&key, &service, u64::from(p.saddr_be), 1) else {
                // Local policy and no local endpoint (or no endpoint at all): as kube-proxy.
                count(counters::NO_BACKEND);
                return Some(TC_ACT_SHOT);
            };
            let Some(backend) = unsafe { BACKENDS.get(backend_id) }.copied() else {
                count(counters::MAP_MISS);
                return Some(TC_ACT_OK);
            };
            // Under the Cluster policy a backend on another node gets the packet from this
            // node, so its reply comes back here to be translated.
            let snat = if service.flags & FLAG_LOCAL == 0 && backend.flags & BACKEND_LOCAL == 0 {
                p.daddr_be
            } else {
                0
            };
            let fwd = CtValue {
                addr_be: backend.addr_be,
                port_be: backend.port_be,
                client_port_be: p.sport_be,
                client_be: p.saddr_be,
                snat_be: snat,
            };
            let _ = CT.insert(forward, fwd, 0);
            let reply_key = CtKey {
                saddr_be: backend.addr_be,
                daddr_be: if snat != 0 { snat } else { p.saddr_be },
                sport_be: backend.port_be,
                dport_be: p.sport_be,
                proto: p.proto,
                dir: CT_REPLY,
                _pad: [0; 2],
            };
            let reply = CtValue {
                addr_be: p.daddr_be,
                port_be: p.dport_be,
                client_port_be: p.sport_be,
                client_be: if snat != 0 { p.saddr_be } else { 0 },
                snat_be: 0,
            };
            let _ = CT.insert(reply_key, reply, 0);
            (backend.addr_be, backend.port_be, snat)
        }
    };
    set_addr(ctx, p, IP_DADDR, p.daddr_be, backend_addr)?;
    set_port(ctx, p, p.l4 + 2, p.dport_be, backend_port)?;
    count(counters::TRANSLATED);
    if snat != 0 {
        set_addr(ctx, p, IP_SADDR, p.saddr_be, snat)?;
        return Some(redirect(ctx, snat, backend_addr));
    }
    // A local backend: the stack routes it to the pod, keeping the client address.
    Some(TC_ACT_OK)
}

#[classifier]
pub fn ferry_tc_egress(ctx: TcContext) -> i32 {
    tc_run(&ctx, tc_egress)
}

/// A local backend's reply leaving for the client: it must come from the frontend.
fn tc_egress(ctx: &TcContext, p: &Packet) -> Option<i32> {
    let key = CtKey {
        saddr_be: p.saddr_be,
        daddr_be: p.daddr_be,
        sport_be: p.sport_be,
        dport_be: p.dport_be,
        proto: p.proto,
        dir: CT_REPLY,
        _pad: [0; 2],
    };
    // SAFETY: read-only lookup, value copied out.
    if let Some(reply) = unsafe { CT.get(key) }.copied()
        && reply.client_be == 0
    {
        set_addr(ctx, p, IP_SADDR, p.saddr_be, reply.addr_be)?;
        set_port(ctx, p, p.l4, p.sport_be, reply.port_be)?;
        count(counters::TRANSLATED);
    }
    Some(TC_ACT_OK)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: eBPF programs cannot unwind; the verifier rejects any path that reaches here.
    unsafe { core::hint::unreachable_unchecked() }
}

/// The kernel lets GPL-compatible programs use helpers such as `bpf_fib_lookup`.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
