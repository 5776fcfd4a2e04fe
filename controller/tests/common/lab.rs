//! A small lab of hosts made of network namespaces on a bridge that itself lives in a
//! namespace, so nothing touches the machine's own network. Each host gets an address on a
//! /24 of its own per lab; everything is deleted when the lab drops.
#![allow(dead_code)]

pub use gameday_test_support as netns;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

#[allow(unused_imports)] // not every test binary uses both
pub use netns::{privileged, NetNs};

/// A bridge (in a namespace of its own) that hosts plug into.
pub struct Lab {
    /// The switch namespace holding the bridge; declared last so hosts go first on drop.
    hosts: Vec<String>,
    prefix: String,
    next: u8,
    pub switch: NetNs,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    /// A new empty lab on a /24 of its own (10.X.Y.0/24, X and Y from the process and a counter).
    pub fn new() -> Lab {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("10.{}.{}", 100 + std::process::id() % 100, 10 + n % 200);
        let switch = NetNs::new("sw");
        ip(&["-n", &switch.name, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch.name, "link", "set", "br0", "up"]);
        Lab {
            hosts: Vec::new(),
            prefix,
            next: 1,
            switch,
        }
    }

    /// Plugs a new host into the bridge; returns its namespace and address.
    pub fn host(&mut self, tag: &str) -> (NetNs, String) {
        let ns = NetNs::new(tag);
        let addr = format!("{}.{}", self.prefix, self.next);
        let (outer, inner) = (format!("{}s", ns.name), format!("{}h", ns.name));
        // Interface names are at most 15 characters; namespace names are at most 13 here.
        let (outer, inner) = (
            &outer[outer.len().saturating_sub(15)..],
            &inner[inner.len().saturating_sub(15)..],
        );
        ip(&[
            "link",
            "add",
            inner,
            "netns",
            &ns.name,
            "type",
            "veth",
            "peer",
            "name",
            outer,
            "netns",
            &self.switch.name,
        ]);
        ip(&[
            "-n",
            &self.switch.name,
            "link",
            "set",
            outer,
            "master",
            "br0",
        ]);
        ip(&["-n", &self.switch.name, "link", "set", outer, "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            inner,
        ]);
        ip(&["-n", &ns.name, "link", "set", inner, "up"]);
        self.next += 1;
        self.hosts.push(ns.name.clone());
        (ns, addr)
    }
}
