//! The aya seam: loads ferry's eBPF object with its maps pinned (so a restart finds the
//! previous state), attaches the programs, and is the [`MapStore`] the programmer writes to.
//! Dropping it detaches every program; the pinned maps stay for the next start (or
//! `ferry l4 cleanup`).

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap, Map, MapData, MapError, PerCpuArray};
use aya::programs::{CgroupAttachMode, CgroupSockAddr, SchedClassifier, TcAttachType};
use aya::{Ebpf, EbpfLoader};
use ferry_ebpf_common::{Backend, MemberKey, ServiceKey, ServiceValue, counters, maps};

use super::L4Error;
use super::program::{MapStore, Mirror, Programmed};

/// The object built by `build.rs` from `ebpf/programs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ferry-ebpf"));

/// Map sizes (entries).
#[derive(Debug, Clone, Copy)]
pub struct Capacities {
    /// Frontend slots: one per frontend plus one per backend of each frontend.
    pub services: u32,
    pub backends: u32,
    /// Tracked NodePort connections (both directions count).
    pub connections: u32,
    /// Remembered client choices under `sessionAffinity: ClientIP`.
    pub affinity: u32,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            services: 65_536,
            backends: 65_536,
            connections: 262_144,
            affinity: 65_536,
        }
    }
}

pub(crate) struct Kernel {
    ebpf: Ebpf,
    services: HashMap<MapData, ServiceKey, ServiceValue>,
    backends: HashMap<MapData, u32, Backend>,
    members: HashMap<MapData, MemberKey, u32>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").finish_non_exhaustive()
    }
}

/// An error with its causes (aya's syscall errors keep the OS error as the source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn map_error(what: &str) -> impl Fn(MapError) -> L4Error + '_ {
    move |e| L4Error::Map(format!("{what}: {e}"))
}

fn take<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &str,
) -> Result<HashMap<MapData, K, V>, L4Error> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| L4Error::Map(format!("{name}: not in the object")))?;
    HashMap::try_from(map).map_err(map_error(name))
}

impl Kernel {
    /// Loads the programs; maps are pinned under `pin_path` (reused if already there).
    pub(crate) fn load(pin_path: &Path, capacities: Capacities) -> Result<Self, L4Error> {
        let members = capacities.services.saturating_mul(2);
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pin_path)
            .map_max_entries(maps::SERVICES, capacities.services)
            .map_max_entries(maps::BACKENDS, capacities.backends)
            .map_max_entries(maps::MEMBERS, members)
            .map_max_entries(maps::AFFINITY, capacities.affinity)
            .map_max_entries(maps::SOCK_REVNAT, capacities.connections)
            .map_max_entries(maps::CT, capacities.connections)
            .load(OBJECT)
            .map_err(|e| L4Error::Load(e.to_string()))?;
        Ok(Kernel {
            services: take(&mut ebpf, maps::SERVICES)?,
            backends: take(&mut ebpf, maps::BACKENDS)?,
            members: take(&mut ebpf, maps::MEMBERS)?,
            ebpf,
        })
    }

    /// Attaches the socket-LB programs to a cgroup v2 directory: every process in it (and in
    /// its descendants) connects to backends instead of frontends.
    pub(crate) fn attach_cgroup(&mut self, cgroup: &Path) -> Result<(), L4Error> {
        let dir = File::open(cgroup)
            .map_err(|e| L4Error::Attach(format!("cgroup {}: {e}", cgroup.display())))?;
        for name in [
            "ferry_connect4",
            "ferry_sendmsg4",
            "ferry_recvmsg4",
            "ferry_getpeername4",
        ] {
            let program: &mut CgroupSockAddr = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| L4Error::Load(format!("{name}: not in the object")))?
                .try_into()
                .map_err(|e| L4Error::Load(format!("{name}: {e}")))?;
            program
                .load()
                .map_err(|e| L4Error::Load(format!("{name}: {}", chain(&e))))?;
            // Through a BPF link (kernel >= 5.7), which always coexists with other programs
            // attached to the hierarchy (systemd's, another CNI's); links take no mode flags.
            program
                .attach(&dir, CgroupAttachMode::Single)
                .map_err(|e| {
                    L4Error::Attach(format!("{name} to {}: {}", cgroup.display(), chain(&e)))
                })?;
        }
        Ok(())
    }

    /// Attaches the TC programs to a device's ingress and egress (tcx where the kernel has it).
    pub(crate) fn attach_tc(&mut self, device: &str) -> Result<(), L4Error> {
        for (name, direction) in [
            ("ferry_tc_ingress", TcAttachType::Ingress),
            ("ferry_tc_egress", TcAttachType::Egress),
        ] {
            let program: &mut SchedClassifier = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| L4Error::Load(format!("{name}: not in the object")))?
                .try_into()
                .map_err(|e| L4Error::Load(format!("{name}: {e}")))?;
            if program.fd().is_err() {
                program
                    .load()
                    .map_err(|e| L4Error::Load(format!("{name}: {e}")))?;
            }
            // Kernels before 6.6 (no tcx) hang classifiers off a clsact qdisc; with tcx it is
            // unused. It may exist already.
            let _ = aya::programs::tc::qdisc_add_clsact(device);
            program
                .attach(device, direction)
                .map_err(|e| L4Error::Attach(format!("{name} to {device}: {}", chain(&e))))?;
        }
        Ok(())
    }

    /// What the maps hold now, as the programmer tracks it.
    pub(crate) fn mirror(&self) -> Result<Mirror, L4Error> {
        let mut mirror = Mirror::default();
        let entries: Vec<(ServiceKey, ServiceValue)> = self
            .services
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_error(maps::SERVICES))?;
        let slots: std::collections::HashMap<ServiceKey, u32> = entries
            .iter()
            .filter(|(k, _)| k.slot != 0)
            .map(|(k, v)| (*k, v.backend_id))
            .collect();
        for (k, head) in entries.iter().filter(|(k, _)| k.slot == 0) {
            let ids: Option<Vec<u32>> = (1..=head.count)
                .map(|slot| slots.get(&ServiceKey { slot, ..*k }).copied())
                .collect();
            // A frontend caught half-written by an earlier run: rewrite it from scratch.
            let backend_ids = ids.unwrap_or_default();
            mirror.frontends.insert(
                (k.addr_be, k.port_be, k.proto),
                Programmed {
                    service_id: head.service_id,
                    flags: head.flags,
                    affinity_timeout_s: head.affinity_timeout_s,
                    backend_ids,
                },
            );
        }
        for entry in self.backends.iter() {
            let (id, backend) = entry.map_err(map_error(maps::BACKENDS))?;
            mirror.backends.insert(id, backend);
        }
        for key in self.members.keys() {
            let key = key.map_err(map_error(maps::MEMBERS))?;
            mirror.members.insert((key.service_id, key.backend_id));
        }
        Ok(mirror)
    }
}

/// Deleting what is already gone is not an error.
fn ignore_missing(result: Result<(), MapError>) -> Result<(), String> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.kind() == std::io::ErrorKind::NotFound => {
            Ok(())
        }
        other => other.map_err(|e| e.to_string()),
    }
}

impl MapStore for Kernel {
    fn put_backend(&mut self, id: u32, backend: &Backend) -> Result<(), String> {
        self.backends
            .insert(id, backend, 0)
            .map_err(|e| e.to_string())
    }
    fn del_backend(&mut self, id: u32) -> Result<(), String> {
        ignore_missing(self.backends.remove(&id))
    }
    fn put_member(&mut self, key: &MemberKey, slot: u32) -> Result<(), String> {
        self.members.insert(key, slot, 0).map_err(|e| e.to_string())
    }
    fn del_member(&mut self, key: &MemberKey) -> Result<(), String> {
        ignore_missing(self.members.remove(key))
    }
    fn put_service(&mut self, key: &ServiceKey, value: &ServiceValue) -> Result<(), String> {
        self.services
            .insert(key, value, 0)
            .map_err(|e| e.to_string())
    }
    fn del_service(&mut self, key: &ServiceKey) -> Result<(), String> {
        ignore_missing(self.services.remove(key))
    }
}

fn pinned<K: aya::Pod, V: aya::Pod>(
    dir: &Path,
    name: &str,
) -> Result<HashMap<MapData, K, V>, L4Error> {
    let data = MapData::from_pin(dir.join(name))
        .map_err(|e| L4Error::Map(format!("{}: {e}", dir.join(name).display())))?;
    HashMap::try_from(Map::HashMap(data)).map_err(map_error(name))
}

fn ip(addr_be: u32) -> Ipv4Addr {
    Ipv4Addr::from(addr_be.to_ne_bytes())
}

/// The programmed frontends, their backends and the programs' counters, from the maps pinned
/// under `pin_path`, as text: what an operator checks on a node.
pub fn dump(pin_path: &Path) -> Result<String, L4Error> {
    use std::fmt::Write;
    let services: HashMap<MapData, ServiceKey, ServiceValue> = pinned(pin_path, maps::SERVICES)?;
    let backends: HashMap<MapData, u32, Backend> = pinned(pin_path, maps::BACKENDS)?;
    let entries: Vec<(ServiceKey, ServiceValue)> = services.iter().filter_map(Result::ok).collect();
    let mut heads: Vec<&(ServiceKey, ServiceValue)> =
        entries.iter().filter(|(k, _)| k.slot == 0).collect();
    heads.sort_by_key(|(k, _)| (ip(k.addr_be), u16::from_be(k.port_be), k.proto));
    let mut out = String::new();
    for (k, v) in heads {
        let proto = if k.proto == 17 { "UDP" } else { "TCP" };
        let mut flags = Vec::new();
        if v.flags & ferry_ebpf_common::FLAG_LOCAL != 0 {
            flags.push("policy=Local".to_owned());
        }
        if v.flags & ferry_ebpf_common::FLAG_AFFINITY != 0 {
            flags.push(format!("affinity={}s", v.affinity_timeout_s));
        }
        let _ = writeln!(
            out,
            "{}:{}/{proto} service={} backends={} {}",
            ip(k.addr_be),
            u16::from_be(k.port_be),
            v.service_id,
            v.count,
            flags.join(" ").trim_end()
        );
        for slot in 1..=v.count {
            let id = entries
                .iter()
                .find(|(s, _)| *s == ServiceKey { slot, ..*k })
                .map(|(_, v)| v.backend_id);
            let backend = id.and_then(|id| backends.get(&id, 0).ok());
            match backend {
                Some(b) => {
                    let local = if b.flags & ferry_ebpf_common::BACKEND_LOCAL != 0 {
                        " (local)"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        out,
                        "  {slot}: {}:{}{local}",
                        ip(b.addr_be),
                        u16::from_be(b.port_be)
                    );
                }
                None => {
                    let _ = writeln!(out, "  {slot}: missing backend");
                }
            }
        }
    }
    let data = MapData::from_pin(pin_path.join(maps::COUNTERS))
        .map_err(|e| L4Error::Map(e.to_string()))?;
    let counters_map: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(Map::PerCpuArray(data)).map_err(map_error(maps::COUNTERS))?;
    let _ = writeln!(out, "counters:");
    for (i, name) in counters::NAMES.iter().enumerate() {
        let total: u64 = counters_map
            .get(&(i as u32), 0)
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0);
        let _ = writeln!(out, "  {name}: {total}");
    }
    Ok(out)
}

/// Removes the maps pinned under `pin_path` (after ferry stopped for good).
pub fn cleanup(pin_path: &Path) -> Result<Vec<PathBuf>, L4Error> {
    let mut removed = Vec::new();
    for name in maps::ALL {
        let path = pin_path.join(name);
        if path.exists() {
            std::fs::remove_file(&path)
                .map_err(|e| L4Error::System(format!("{}: {e}", path.display())))?;
            removed.push(path);
        }
    }
    let _ = std::fs::remove_dir(pin_path);
    Ok(removed)
}
