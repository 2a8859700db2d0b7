//! From a [`ServiceTable`] to map entries, as a diff against what the maps hold, applied
//! make-before-break:
//!
//! 1. backends and memberships a frontend will use are written first;
//! 2. then its backend slots, then its slot 0 (the count switches the frontend over at once);
//! 3. slots beyond the new count, removed frontends, and backends and memberships nothing uses
//!    any more go last.
//!
//! A connection picking a backend at any instant sees either the old list or the new one, and
//! never a backend id whose entry is gone. Only frontends whose entries change are written, so
//! an update costs O(changed frontends). The pure part (what to write, in what order) works on
//! a [`MapStore`]; `kernel.rs` implements it over the pinned BPF maps, tests over a recorder.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use ferry_ebpf_common::{
    BACKEND_LOCAL, Backend, FLAG_AFFINITY, FLAG_LOCAL, MemberKey, ServiceKey, ServiceValue,
};
use ferry_model::{L4Backend, ServiceTable};

/// Writes and deletes of map entries; errors carry the map's message.
pub(crate) trait MapStore {
    fn put_backend(&mut self, id: u32, backend: &Backend) -> Result<(), String>;
    fn del_backend(&mut self, id: u32) -> Result<(), String>;
    fn put_member(&mut self, key: &MemberKey, slot: u32) -> Result<(), String>;
    fn del_member(&mut self, key: &MemberKey) -> Result<(), String>;
    fn put_service(&mut self, key: &ServiceKey, value: &ServiceValue) -> Result<(), String>;
    fn del_service(&mut self, key: &ServiceKey) -> Result<(), String>;
}

/// A frontend as the maps key it: address, port, protocol (slot 0).
pub(crate) type Frontend = (u32, u16, u8);

fn key(f: Frontend, slot: u16) -> ServiceKey {
    ServiceKey::new(f.0, f.1, f.2, slot)
}

/// What one frontend holds in the maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Programmed {
    pub(crate) service_id: u32,
    pub(crate) flags: u16,
    pub(crate) affinity_timeout_s: u32,
    pub(crate) backend_ids: Vec<u32>,
}

/// The maps' contents as far as the programmer is concerned: read once at start (so state
/// pinned by an earlier run is reconciled, not duplicated), then kept in step with each write.
#[derive(Debug, Default, Clone)]
pub(crate) struct Mirror {
    pub(crate) frontends: BTreeMap<Frontend, Programmed>,
    pub(crate) backends: BTreeMap<u32, Backend>,
    pub(crate) members: BTreeSet<(u32, u32)>,
}

/// What a frontend should hold, before ids are assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// The backend list it uses: a Service port's internal or external list.
    pub(crate) list: (String, bool),
    pub(crate) backends: Vec<Backend>,
    pub(crate) flags: u16,
    pub(crate) affinity_timeout_s: u32,
}

pub(crate) fn ip_be(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
}

/// Every frontend the table asks for. NodePorts answer on `node_addresses`.
pub(crate) fn wanted(
    table: &ServiceTable,
    node_addresses: &[Ipv4Addr],
) -> BTreeMap<Frontend, Wanted> {
    let mut out = BTreeMap::new();
    for s in &table.services {
        let proto = s.protocol.number();
        let label = s.label();
        let backends = |list: &[L4Backend]| -> Vec<Backend> {
            list.iter()
                .map(|b| Backend {
                    addr_be: ip_be(*b.addr.ip()),
                    port_be: b.addr.port().to_be(),
                    proto,
                    flags: if b.local { BACKEND_LOCAL } else { 0 },
                })
                .collect()
        };
        let affinity = if s.affinity_timeout.is_some() {
            FLAG_AFFINITY
        } else {
            0
        };
        let timeout = s.affinity_timeout.unwrap_or(0);
        let internal = Wanted {
            list: (label.clone(), false),
            backends: backends(&s.internal_backends),
            flags: affinity,
            affinity_timeout_s: timeout,
        };
        let external = Wanted {
            list: (label, true),
            backends: backends(&s.external_backends),
            flags: affinity | if s.external_local { FLAG_LOCAL } else { 0 },
            affinity_timeout_s: timeout,
        };
        let mut add = |ip: Ipv4Addr, port: u16, wanted: &Wanted| {
            // A frontend claimed twice (two Services on one address and port): the first wins.
            out.entry((ip_be(ip), port.to_be(), proto))
                .or_insert_with(|| wanted.clone());
        };
        for &ip in &s.cluster_ips {
            add(ip, s.port, &internal);
        }
        for &ip in &s.external_ips {
            add(ip, s.port, &external);
        }
        if let Some(node_port) = s.node_port {
            for &ip in node_addresses {
                add(ip, node_port, &external);
            }
        }
    }
    out
}

/// What an apply changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Changes {
    pub(crate) frontends_written: usize,
    pub(crate) frontends_removed: usize,
    pub(crate) entries_written: usize,
    pub(crate) entries_deleted: usize,
}

/// Assigns ids and applies wanted state to a store, keeping the mirror in step.
#[derive(Debug, Default)]
pub(crate) struct Programmer {
    pub(crate) mirror: Mirror,
    list_ids: HashMap<(String, bool), u32>,
}

impl Programmer {
    pub(crate) fn new(mirror: Mirror) -> Self {
        Programmer {
            mirror,
            list_ids: HashMap::new(),
        }
    }

    fn backend_id(
        &mut self,
        backend: &Backend,
        store: &mut dyn MapStore,
        changes: &mut Changes,
    ) -> Result<u32, String> {
        if let Some((&id, _)) = self.mirror.backends.iter().find(|(_, b)| *b == backend) {
            return Ok(id);
        }
        let id = first_free(self.mirror.backends.keys().copied());
        store.put_backend(id, backend)?;
        changes.entries_written += 1;
        self.mirror.backends.insert(id, *backend);
        Ok(id)
    }

    fn service_id(&mut self, list: &(String, bool), current: Option<u32>) -> u32 {
        if let Some(&id) = self.list_ids.get(list) {
            return id;
        }
        let taken: BTreeSet<u32> = self.list_ids.values().copied().collect();
        // After a restart, a frontend keeps the id the maps give it (affinity entries use it).
        let id = current.filter(|id| !taken.contains(id)).unwrap_or_else(|| {
            let used = self
                .mirror
                .frontends
                .values()
                .map(|p| p.service_id)
                .chain(taken.iter().copied());
            first_free(used)
        });
        self.list_ids.insert(list.clone(), id);
        id
    }

    pub(crate) fn apply(
        &mut self,
        wanted: &BTreeMap<Frontend, Wanted>,
        store: &mut dyn MapStore,
    ) -> Result<Changes, String> {
        let mut changes = Changes::default();
        // Lists keep their ids from one apply to the next only while they exist.
        self.list_ids
            .retain(|list, _| wanted.values().any(|w| &w.list == list));
        for (&frontend, want) in wanted {
            let current = self.mirror.frontends.get(&frontend).cloned();
            let service_id = self.service_id(&want.list, current.as_ref().map(|c| c.service_id));
            let mut ids = Vec::with_capacity(want.backends.len());
            for b in &want.backends {
                ids.push(self.backend_id(b, store, &mut changes)?);
            }
            let next = Programmed {
                service_id,
                flags: want.flags,
                affinity_timeout_s: want.affinity_timeout_s,
                backend_ids: ids,
            };
            if current.as_ref() == Some(&next) {
                continue;
            }
            changes.frontends_written += 1;
            for (i, &id) in next.backend_ids.iter().enumerate() {
                if self.mirror.members.insert((service_id, id)) {
                    store.put_member(
                        &MemberKey {
                            service_id,
                            backend_id: id,
                        },
                        i as u32 + 1,
                    )?;
                    changes.entries_written += 1;
                }
            }
            let old_ids = current.as_ref().map_or(&[][..], |c| &c.backend_ids[..]);
            for (i, &id) in next.backend_ids.iter().enumerate() {
                if old_ids.get(i) != Some(&id) {
                    let slot = ServiceValue {
                        backend_id: id,
                        service_id,
                        affinity_timeout_s: 0,
                        count: 0,
                        flags: 0,
                    };
                    store.put_service(&key(frontend, i as u16 + 1), &slot)?;
                    changes.entries_written += 1;
                }
            }
            let head = ServiceValue {
                backend_id: 0,
                service_id,
                affinity_timeout_s: next.affinity_timeout_s,
                count: next.backend_ids.len() as u16,
                flags: next.flags,
            };
            store.put_service(&key(frontend, 0), &head)?;
            changes.entries_written += 1;
            for i in next.backend_ids.len()..old_ids.len() {
                store.del_service(&key(frontend, i as u16 + 1))?;
                changes.entries_deleted += 1;
            }
            self.mirror.frontends.insert(frontend, next);
        }
        let gone: Vec<Frontend> = self
            .mirror
            .frontends
            .keys()
            .filter(|f| !wanted.contains_key(f))
            .copied()
            .collect();
        for frontend in gone {
            let old = self
                .mirror
                .frontends
                .remove(&frontend)
                .unwrap_or_else(|| unreachable!());
            store.del_service(&key(frontend, 0))?;
            for i in 0..old.backend_ids.len() {
                store.del_service(&key(frontend, i as u16 + 1))?;
            }
            changes.frontends_removed += 1;
            changes.entries_deleted += 1 + old.backend_ids.len();
        }
        // Last: what no frontend refers to any more.
        let used_members: BTreeSet<(u32, u32)> = self
            .mirror
            .frontends
            .values()
            .flat_map(|p| p.backend_ids.iter().map(move |&b| (p.service_id, b)))
            .collect();
        for (service_id, backend_id) in self
            .mirror
            .members
            .difference(&used_members)
            .copied()
            .collect::<Vec<_>>()
        {
            store.del_member(&MemberKey {
                service_id,
                backend_id,
            })?;
            self.mirror.members.remove(&(service_id, backend_id));
            changes.entries_deleted += 1;
        }
        let used_backends: BTreeSet<u32> = used_members.iter().map(|&(_, b)| b).collect();
        let unused: Vec<u32> = self
            .mirror
            .backends
            .keys()
            .filter(|id| !used_backends.contains(id))
            .copied()
            .collect();
        for id in unused {
            store.del_backend(id)?;
            self.mirror.backends.remove(&id);
            changes.entries_deleted += 1;
        }
        Ok(changes)
    }
}

/// The smallest id from 1 not in `used`.
fn first_free(used: impl Iterator<Item = u32>) -> u32 {
    let used: BTreeSet<u32> = used.collect();
    (1..).find(|id| !used.contains(id)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use ferry_model::{L4Service, ObjectRef, Protocol};

    use super::*;

    /// A store that keeps the maps in memory and checks, after every single write, what a
    /// connection choosing a backend at that instant would see.
    #[derive(Default)]
    struct Kernel {
        services: BTreeMap<ServiceKey, ServiceValue>,
        backends: BTreeMap<u32, Backend>,
        members: BTreeMap<MemberKey, u32>,
        ops: usize,
    }

    impl Kernel {
        /// Every frontend's every slot points at an existing backend that is a member.
        fn consistent(&self) {
            for (k, head) in self.services.iter().filter(|(k, _)| k.slot == 0) {
                for slot in 1..=head.count {
                    let s = self
                        .services
                        .get(&ServiceKey { slot, ..*k })
                        .unwrap_or_else(|| panic!("slot {slot} of {k:?} missing"));
                    assert!(
                        self.backends.contains_key(&s.backend_id),
                        "slot points at a deleted backend"
                    );
                    let member = MemberKey {
                        service_id: head.service_id,
                        backend_id: s.backend_id,
                    };
                    assert!(self.members.contains_key(&member), "backend not a member");
                }
            }
        }

        fn after(&mut self) -> Result<(), String> {
            self.ops += 1;
            self.consistent();
            Ok(())
        }
    }

    impl MapStore for Kernel {
        fn put_backend(&mut self, id: u32, b: &Backend) -> Result<(), String> {
            self.backends.insert(id, *b);
            self.after()
        }
        fn del_backend(&mut self, id: u32) -> Result<(), String> {
            self.backends.remove(&id);
            self.after()
        }
        fn put_member(&mut self, k: &MemberKey, slot: u32) -> Result<(), String> {
            self.members.insert(*k, slot);
            self.after()
        }
        fn del_member(&mut self, k: &MemberKey) -> Result<(), String> {
            self.members.remove(k);
            self.after()
        }
        fn put_service(&mut self, k: &ServiceKey, v: &ServiceValue) -> Result<(), String> {
            self.services.insert(*k, *v);
            self.after()
        }
        fn del_service(&mut self, k: &ServiceKey) -> Result<(), String> {
            self.services.remove(k);
            self.after()
        }
    }

    fn svc(name: &str, ip: [u8; 4], backends: &[u16], node_port: Option<u16>) -> L4Service {
        let list: Vec<L4Backend> = backends
            .iter()
            .map(|&p| L4Backend {
                addr: SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 1), p),
                local: p % 2 == 0,
            })
            .collect();
        L4Service {
            service: ObjectRef::new("default", name),
            port_name: "".into(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ips: vec![Ipv4Addr::from(ip)],
            node_port,
            external_ips: vec![],
            internal_backends: list.clone(),
            external_backends: list,
            external_local: false,
            affinity_timeout: None,
            health_check_node_port: None,
        }
    }

    fn table(services: Vec<L4Service>) -> ServiceTable {
        ServiceTable { services }
    }

    const NODE: [Ipv4Addr; 1] = [Ipv4Addr::new(192, 168, 0, 1)];

    #[test]
    fn every_step_of_every_update_leaves_consistent_maps() {
        let mut kernel = Kernel::default();
        let mut p = Programmer::default();
        let steps = [
            table(vec![svc("a", [10, 96, 0, 1], &[1, 2, 3], Some(30080))]),
            table(vec![
                svc("a", [10, 96, 0, 1], &[2, 3, 4, 5], Some(30080)),
                svc("b", [10, 96, 0, 2], &[9], None),
            ]),
            table(vec![
                svc("a", [10, 96, 0, 1], &[5], None),
                svc("b", [10, 96, 0, 2], &[], None),
            ]),
            table(vec![svc("b", [10, 96, 0, 2], &[1, 9], None)]),
            table(vec![]),
        ];
        for t in &steps {
            p.apply(&wanted(t, &NODE), &mut kernel).unwrap();
            kernel.consistent();
            // The maps say exactly what was asked.
            let want = wanted(t, &NODE);
            let heads: BTreeSet<Frontend> = kernel
                .services
                .keys()
                .filter(|k| k.slot == 0)
                .map(|k| (k.addr_be, k.port_be, k.proto))
                .collect();
            assert_eq!(heads, want.keys().copied().collect());
            for (f, w) in &want {
                let head = kernel.services[&key(*f, 0)];
                assert_eq!(usize::from(head.count), w.backends.len());
                let got: Vec<Backend> = (1..=head.count)
                    .map(|s| kernel.backends[&kernel.services[&key(*f, s)].backend_id])
                    .collect();
                assert_eq!(got, w.backends);
            }
        }
        assert!(
            kernel.services.is_empty() && kernel.backends.is_empty() && kernel.members.is_empty()
        );
    }

    #[test]
    fn an_unchanged_table_writes_nothing_and_one_change_writes_one_frontend() {
        let mut kernel = Kernel::default();
        let mut p = Programmer::default();
        let mut services: Vec<L4Service> = (0..50)
            .map(|i| svc(&format!("s{i}"), [10, 96, 1, i as u8], &[1, 2], None))
            .collect();
        p.apply(&wanted(&table(services.clone()), &NODE), &mut kernel)
            .unwrap();
        let before = kernel.ops;
        let again = p
            .apply(&wanted(&table(services.clone()), &NODE), &mut kernel)
            .unwrap();
        assert_eq!((again, kernel.ops), (Changes::default(), before));
        services[7] = svc("s7", [10, 96, 1, 7], &[1, 2, 3], None);
        let one = p
            .apply(&wanted(&table(services), &NODE), &mut kernel)
            .unwrap();
        assert_eq!(one.frontends_written, 1);
        assert!(
            kernel.ops - before <= 5,
            "{} writes for one added backend",
            kernel.ops - before
        );
    }

    #[test]
    fn a_restart_reconciles_with_what_the_maps_hold() {
        let mut kernel = Kernel::default();
        let t = table(vec![
            svc("a", [10, 96, 0, 1], &[1, 2], Some(30080)),
            svc("b", [10, 96, 0, 2], &[3], None),
        ]);
        Programmer::default()
            .apply(&wanted(&t, &NODE), &mut kernel)
            .unwrap();
        // A new process reads the maps back and is asked for the same table: nothing to do.
        let mut mirror = Mirror::default();
        for (k, v) in kernel.services.iter().filter(|(k, _)| k.slot == 0) {
            let ids = (1..=v.count)
                .map(|s| kernel.services[&ServiceKey { slot: s, ..*k }].backend_id)
                .collect();
            mirror.frontends.insert(
                (k.addr_be, k.port_be, k.proto),
                Programmed {
                    service_id: v.service_id,
                    flags: v.flags,
                    affinity_timeout_s: v.affinity_timeout_s,
                    backend_ids: ids,
                },
            );
        }
        mirror.backends = kernel.backends.clone();
        mirror.members = kernel
            .members
            .keys()
            .map(|m| (m.service_id, m.backend_id))
            .collect();
        let before = kernel.ops;
        let changes = Programmer::new(mirror)
            .apply(&wanted(&t, &NODE), &mut kernel)
            .unwrap();
        assert_eq!(
            (changes, kernel.ops),
            (Changes::default(), before),
            "nothing rewritten or duplicated"
        );
    }

    #[test]
    fn node_ports_answer_on_node_addresses_with_the_external_list() {
        let mut s = svc("a", [10, 96, 0, 1], &[1, 2], Some(30080));
        s.external_local = true;
        s.external_backends.retain(|b| b.local);
        s.affinity_timeout = Some(5);
        let w = wanted(&table(vec![s]), &NODE);
        let nodeport = &w[&(ip_be(NODE[0]), 30080u16.to_be(), 6)];
        assert_eq!(nodeport.flags, FLAG_LOCAL | FLAG_AFFINITY);
        assert_eq!(nodeport.backends.len(), 1);
        let cluster = &w[&(ip_be(Ipv4Addr::new(10, 96, 0, 1)), 80u16.to_be(), 6)];
        assert_eq!((cluster.flags, cluster.backends.len()), (FLAG_AFFINITY, 2));
        assert_ne!(nodeport.list, cluster.list);
    }
}
