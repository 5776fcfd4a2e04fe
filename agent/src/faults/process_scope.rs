//! Where a process is — its cgroup, the unit and container that cgroup names, its network and
//! pid namespaces — and whether a fault's scope or the policy's `scopes` hold it.
//!
//! Everything is read from `/proc/PID/cgroup` and `/proc/PID/ns/*` through [`ProcessOs`]; no
//! container runtime is asked. A container's id is the 64-hex-digit id docker, containerd,
//! cri-o and podman all put in the cgroup path; a systemd-nspawn machine is
//! `machine-NAME.scope`.

use std::collections::BTreeMap;

use gameday_proto::{NamespaceScope, ProcessPlace, ProcessSelector};

use super::FaultError;
use crate::os::{Namespace, ProcessInfo, ProcessOs};

/// Where one process is. `None` for what could not be read (the process is gone, or /proc
/// will not say): no scope holds an unknown place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Whereabouts {
    /// Its cgroup path.
    pub cgroup: Option<String>,
    /// Its network namespace's inode.
    pub netns: Option<u64>,
    /// Its pid namespace's inode.
    pub pidns: Option<u64>,
}

/// Reads where process `pid` is.
pub fn locate(pid: i32, os: &dyn ProcessOs) -> Result<Whereabouts, FaultError> {
    Ok(Whereabouts {
        cgroup: os.cgroup(pid).map_err(FaultError::Process)?,
        netns: os
            .namespace(pid, Namespace::Net)
            .map_err(FaultError::Process)?,
        pidns: os
            .namespace(pid, Namespace::Pid)
            .map_err(FaultError::Process)?,
    })
}

/// The agent's own namespaces, what `"agent"` means in a fault or policy.
pub fn agent(os: &dyn ProcessOs) -> Result<Whereabouts, FaultError> {
    locate(os.own_pid(), os)
}

/// Whether a process in `cgroup` is in `place`.
pub fn place_holds(place: &ProcessPlace, cgroup: &str) -> bool {
    match place {
        // A unit's processes may sit in sub-cgroups of it (`.../x.service/worker`).
        ProcessPlace::Unit(unit) => cgroup.split('/').any(|c| c == unit),
        ProcessPlace::Cgroup(path) => {
            cgroup == path
                || cgroup
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
        ProcessPlace::Container(wanted) => match container_of(cgroup) {
            Some(Container::Id(id)) => {
                gameday_proto::fault::is_container_id(wanted) && id.starts_with(wanted.as_str())
            }
            Some(Container::Machine(name)) => &name == wanted,
            None => false,
        },
    }
}

/// The container a cgroup path belongs to, as far as the path says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Container {
    /// A container runtime's 64-hex-digit id.
    Id(String),
    /// A systemd-nspawn (machined) machine name.
    Machine(String),
}

/// Finds the container in a cgroup path: the innermost component holding a 64-hex-digit id
/// (`docker-ID.scope`, `/docker/ID`, `cri-containerd-ID.scope`, `crio-ID.scope`,
/// `libpod-ID.scope`, `/kubepods/.../ID`), or a `machine-NAME.scope`. cri-o's `crio-conmon-`
/// scope holds the runtime's monitor, not the container, and is not one.
pub fn container_of(cgroup: &str) -> Option<Container> {
    for component in cgroup.rsplit('/') {
        if component.starts_with("crio-conmon-") {
            return None;
        }
        if let Some(id) = hex_id_in(component) {
            return Some(Container::Id(id.to_string()));
        }
        if let Some(name) = component
            .strip_prefix("machine-")
            .and_then(|c| c.strip_suffix(".scope"))
        {
            // systemd escapes `-` in unit names as `\x2d`.
            return Some(Container::Machine(name.replace("\\x2d", "-")));
        }
    }
    None
}

/// A run of exactly 64 lowercase hex digits in a path component.
fn hex_id_in(component: &str) -> Option<&str> {
    let bytes = component.as_bytes();
    let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let mut start = 0;
    while start < bytes.len() {
        if !is_hex(bytes[start]) {
            start += 1;
            continue;
        }
        let end = (start..bytes.len())
            .find(|&i| !is_hex(bytes[i]))
            .unwrap_or(bytes.len());
        if end - start == 64 {
            return Some(&component[start..end]);
        }
        start = end;
    }
    None
}

/// A fault's scope with its namespaces resolved to inodes.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    place: Option<ProcessPlace>,
    netns: Option<(u64, String)>,
    pidns: Option<(u64, String)>,
}

impl Scope {
    /// Resolves `selector`'s scope: `"agent"` is the agent's namespace, `{ same_as_pid = N }`
    /// process N's, which must be running.
    pub fn resolve(selector: &ProcessSelector, os: &dyn ProcessOs) -> Result<Scope, FaultError> {
        let resolve = |ns: Namespace, scope: Option<NamespaceScope>| -> Result<_, FaultError> {
            let Some(scope) = scope else {
                return Ok(None);
            };
            let (pid, what) = match scope {
                NamespaceScope::Agent => (os.own_pid(), "the agent's".to_string()),
                NamespaceScope::SameAsPid(pid) => (pid, format!("pid {pid}'s")),
            };
            let inode = os
                .namespace(pid, ns)
                .map_err(FaultError::Process)?
                .ok_or_else(|| {
                    FaultError::Invalid(format!(
                        "{}ns: cannot read {what} {} namespace (is pid {pid} running?)",
                        ns.file(),
                        ns.file()
                    ))
                })?;
            Ok(Some((
                inode,
                format!("{what} {} namespace ({inode})", ns.file()),
            )))
        };
        Ok(Scope {
            place: selector.place.clone(),
            netns: resolve(Namespace::Net, selector.netns)?,
            pidns: resolve(Namespace::Pid, selector.pidns)?,
        })
    }

    /// True when the scope restricts anything.
    pub fn is_some(&self) -> bool {
        self.place.is_some() || self.netns.is_some() || self.pidns.is_some()
    }

    /// Whether a process at `w` lies inside every part of the scope.
    pub fn holds(&self, w: &Whereabouts) -> bool {
        let place_ok = self.place.as_ref().is_none_or(|place| {
            w.cgroup
                .as_deref()
                .is_some_and(|cgroup| place_holds(place, cgroup))
        });
        let ns_ok = |want: &Option<(u64, String)>, have: Option<u64>| {
            want.as_ref().is_none_or(|(inode, _)| have == Some(*inode))
        };
        place_ok && ns_ok(&self.netns, w.netns) && ns_ok(&self.pidns, w.pidns)
    }

    /// The scope in words, for errors: `in unit x.service and the agent's net namespace (…)`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(place) = &self.place {
            parts.push(place.to_string());
        }
        for (_, what) in [&self.netns, &self.pidns].into_iter().flatten() {
            parts.push(what.clone());
        }
        parts.join(" and ")
    }
}

/// A warning when `matched` (processes a name or command line picked, with no scope) lie in
/// more than one cgroup, network namespace or pid namespace: on a host with containers a bare
/// name rarely means all of them. `None` when they are all in one place.
pub fn spread_warning(what: &str, matched: &[(ProcessInfo, Whereabouts)]) -> Option<String> {
    let mut parts = Vec::new();
    let groups = |key: &dyn Fn(&Whereabouts) -> String| {
        let mut by: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (p, w) in matched {
            by.entry(key(w)).or_default().push(p.pid);
        }
        by
    };
    let show = |by: &BTreeMap<String, Vec<i32>>| {
        by.iter()
            .map(|(k, pids)| {
                let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
                format!("{k}: {}", pids.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let unknown = || "unknown".to_string();
    let cgroups = groups(&|w| w.cgroup.clone().unwrap_or_else(unknown));
    if cgroups.len() > 1 {
        parts.push(format!("{} cgroups ({})", cgroups.len(), show(&cgroups)));
    }
    for (label, key) in [
        (
            "network namespaces",
            &(|w: &Whereabouts| w.netns.map_or_else(unknown, |i| format!("net:[{i}]")))
                as &dyn Fn(&Whereabouts) -> String,
        ),
        ("pid namespaces", &|w: &Whereabouts| {
            w.pidns.map_or_else(unknown, |i| format!("pid:[{i}]"))
        }),
    ] {
        let by = groups(key);
        if by.len() > 1 {
            parts.push(format!("{} {label} ({})", by.len(), show(&by)));
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "{what} matches processes in {}; add `unit`, `cgroup`, `container`, `netns` or `pidns` \
         to the fault to choose one",
        parts.join(" and in ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f2a9c1b7d8e4f6a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6";

    #[test]
    fn finds_containers_in_every_runtimes_cgroup_naming() {
        for path in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/docker/{ID}"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c4d.slice/cri-containerd-{ID}.scope"),
            format!("/kubepods/besteffort/pod1a2b-3c4d/{ID}"),
            format!("/machine.slice/libpod-{ID}.scope/container"),
            format!("/kubepods.slice/crio-{ID}.scope"),
        ] {
            assert_eq!(container_of(&path), Some(Container::Id(ID.into())), "{path}");
        }
        assert_eq!(
            container_of(&format!("/kubepods.slice/crio-conmon-{ID}.scope")),
            None,
            "conmon is cri-o's monitor, not the container"
        );
        assert_eq!(
            container_of("/machine.slice/machine-web\\x2d1.scope/payload"),
            Some(Container::Machine("web-1".into()))
        );
        assert_eq!(container_of("/system.slice/redis-server.service"), None);
        assert_eq!(container_of(&format!("/x/{}", &ID[..63])), None);
    }

    #[test]
    fn places_hold_their_own_processes_only() {
        let unit = ProcessPlace::Unit("redis-server.service".into());
        assert!(place_holds(&unit, "/system.slice/redis-server.service"));
        assert!(place_holds(&unit, "/system.slice/redis-server.service/sub"));
        assert!(!place_holds(&unit, "/system.slice/redis-server.service.d"));
        assert!(!place_holds(
            &unit,
            "/system.slice/redis-server@6380.service"
        ));
        let cg = ProcessPlace::Cgroup("/gameday-test/a".into());
        assert!(place_holds(&cg, "/gameday-test/a"));
        assert!(place_holds(&cg, "/gameday-test/a/b"));
        assert!(!place_holds(&cg, "/gameday-test/ab"));
        assert!(!place_holds(&cg, "/gameday-test"));
        let docker = format!("/system.slice/docker-{ID}.scope");
        assert!(place_holds(&ProcessPlace::Container(ID.into()), &docker));
        assert!(place_holds(
            &ProcessPlace::Container(ID[..12].into()),
            &docker
        ));
        assert!(!place_holds(
            &ProcessPlace::Container("0123456789ab".into()),
            &docker
        ));
        let machine = "/machine.slice/machine-web.scope/payload";
        assert!(place_holds(&ProcessPlace::Container("web".into()), machine));
        assert!(!place_holds(&ProcessPlace::Container("we".into()), machine));
    }

    fn w(cgroup: &str, netns: u64, pidns: u64) -> Whereabouts {
        Whereabouts {
            cgroup: Some(cgroup.into()),
            netns: Some(netns),
            pidns: Some(pidns),
        }
    }

    fn p(pid: i32) -> ProcessInfo {
        ProcessInfo {
            pid,
            name: "redis-server".into(),
            cmdline: "redis-server".into(),
            start_ticks: 0,
        }
    }

    #[test]
    fn a_scope_needs_every_part_and_known_places() {
        let scope = Scope {
            place: Some(ProcessPlace::Unit("a.service".into())),
            netns: Some((7, "x".into())),
            pidns: None,
        };
        assert!(scope.holds(&w("/system.slice/a.service", 7, 1)));
        assert!(!scope.holds(&w("/system.slice/a.service", 8, 1)));
        assert!(!scope.holds(&w("/system.slice/b.service", 7, 1)));
        assert!(!scope.holds(&Whereabouts::default()), "unknown is outside");
        assert!(Scope::default().holds(&Whereabouts::default()));
    }

    #[test]
    fn warns_only_when_matches_are_spread() {
        let one = vec![
            (p(10), w("/system.slice/redis-server.service", 1, 2)),
            (p(11), w("/system.slice/redis-server.service", 1, 2)),
        ];
        assert_eq!(spread_warning("name \"redis-server\"", &one), None);
        let spread = vec![
            (p(10), w("/system.slice/redis-server.service", 1, 2)),
            (p(20), w(&format!("/system.slice/docker-{ID}.scope"), 5, 6)),
        ];
        let warning = spread_warning("name \"redis-server\"", &spread).unwrap();
        assert!(
            warning.starts_with(
                "name \"redis-server\" matches processes in 2 cgroups \
                 (/system.slice/docker-"
            ),
            "{warning}"
        );
        assert!(
            warning.contains("/system.slice/redis-server.service: 10)"),
            "{warning}"
        );
        assert!(
            warning.contains("2 network namespaces (net:[1]: 10; net:[5]: 20)"),
            "{warning}"
        );
        assert!(warning.contains("2 pid namespaces"), "{warning}");
        assert!(warning.ends_with("to the fault to choose one"), "{warning}");
    }
}
