//! What the L4 path needs from the node: a cgroup v2 hierarchy, a BPF filesystem for pinning,
//! the interfaces to attach to and their addresses.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use super::L4Error;

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn system(what: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> L4Error {
    move |e| L4Error::System(format!("{what}: {e}"))
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup` on most nodes, `/sys/fs/cgroup/unified` on
/// hybrid ones), from the mount table.
pub fn find_cgroup2() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        // "... mount_point ... - fstype source options"
        let (fields, rest) = line.split_once(" - ")?;
        let fstype = rest.split_whitespace().next()?;
        let mount_point = fields.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// A cgroup v2 directory to attach socket LB to: `wanted` if given (it must be on cgroup v2),
/// else the root of the mounted hierarchy, else a hierarchy mounted at `fallback`.
pub fn cgroup_path(wanted: Option<&Path>, fallback: &Path) -> Result<PathBuf, L4Error> {
    if let Some(path) = wanted {
        let fs = statfs(path).map_err(system(path.display()))?;
        if fs.filesystem_type() != CGROUP2_SUPER_MAGIC {
            return Err(L4Error::System(format!(
                "{} is not on a cgroup v2 filesystem",
                path.display()
            )));
        }
        return Ok(path.to_owned());
    }
    if let Some(path) = find_cgroup2() {
        return Ok(path);
    }
    std::fs::create_dir_all(fallback)
        .map_err(|e| L4Error::System(format!("{}: {e}", fallback.display())))?;
    mount(
        Some("cgroup2"),
        fallback,
        Some("cgroup2"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(system(format!(
        "mounting cgroup2 at {}",
        fallback.display()
    )))?;
    Ok(fallback.to_owned())
}

/// Makes sure `pin_path` is a directory on a BPF filesystem, mounting one at its parent
/// (normally `/sys/fs/bpf`) when needed.
pub fn bpffs(pin_path: &Path) -> Result<(), L4Error> {
    let root = pin_path.parent().unwrap_or(pin_path);
    std::fs::create_dir_all(root)
        .map_err(|e| L4Error::System(format!("{}: {e}", root.display())))?;
    let on_bpffs = |p: &Path| statfs(p).is_ok_and(|fs| fs.filesystem_type().0 == BPF_FS_MAGIC);
    if !on_bpffs(root) {
        mount(
            Some("bpf"),
            root,
            Some("bpf"),
            MsFlags::empty(),
            None::<&str>,
        )
        .map_err(system(format!("mounting bpffs at {}", root.display())))?;
    }
    std::fs::create_dir_all(pin_path)
        .map_err(|e| L4Error::System(format!("{}: {e}", pin_path.display())))?;
    Ok(())
}

/// Interfaces carrying a default route: the node's way to the world.
pub fn default_devices() -> Result<Vec<String>, L4Error> {
    let routes = std::fs::read_to_string("/proc/net/route")
        .map_err(|e| L4Error::System(format!("/proc/net/route: {e}")))?;
    let mut devices: Vec<String> = routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (iface, destination, mask) = (f.next()?, f.next()?, f.nth(5)?);
            (destination == "00000000" && mask == "00000000").then(|| iface.to_owned())
        })
        .collect();
    devices.dedup();
    Ok(devices)
}

/// The IPv4 addresses of `devices`: where NodePorts answer.
pub fn ipv4_addresses(devices: &[String]) -> Result<Vec<Ipv4Addr>, L4Error> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(system("getifaddrs"))?;
    let mut found: Vec<Ipv4Addr> = addrs
        .filter(|a| devices.contains(&a.interface_name))
        .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}
