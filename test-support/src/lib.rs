//! Test support shared by gameday's crates: prerequisites that fail loudly in CI, bounded
//! waits, network namespaces the test creates (and always deletes) with a way to run code
//! inside one, and cgroups likewise. Nothing here touches the machine's own network.
//! [`ScenarioBuilder`] writes the scenario files of tests whose scenario is a means.
// Test support runs the `ip` and `sh` commands the tests need.
#![allow(clippy::disallowed_methods)]

pub mod scenario;

pub use scenario::{FaultBuilder, IntoToml, ProbeBuilder, ScenarioBuilder};

use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True when this test may use root-only features. In CI (`GAMEDAY_CI` set) a missing
/// prerequisite fails the test loudly; elsewhere the test says why it skips.
pub fn privileged(needs: &[&str]) -> bool {
    let mut missing: Vec<String> = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("root".into());
    }
    for tool in needs {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            missing.push(format!("the `{tool}` command"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "this test needs {} (./test.sh installs the tools)",
        missing.join(", ")
    );
    assert!(
        !std::env::var("GAMEDAY_CI").is_ok_and(|v| !v.is_empty()),
        "{msg}"
    );
    eprintln!("SKIPPED: {msg}");
    false
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; panics with `what` then.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace made by this test, deleted (with everything in it) on drop.
pub struct NetNs {
    /// Its name (at most 15 characters, unique per test process and call).
    pub name: String,
}

impl NetNs {
    /// Creates `gd<tag><pid><n>` with its loopback up.
    pub fn new(tag: &str) -> NetNs {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "gd{}{}{}",
            &tag[..tag.len().min(3)],
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        assert!(
            name.len() <= 15,
            "{name} is too long for an interface-style name"
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = NetNs { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// Runs a command inside the namespace (`ip netns exec`), returning its output.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    /// Like [`NetNs::exec`], asserting success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a thread that has entered this namespace: sockets it opens and commands it
    /// starts live in the namespace, while the rest of the test process stays outside.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).expect("open the namespace");
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Joins two namespaces with a veth pair: `a` gets `a_cidr`, `b` gets `b_cidr`
/// (e.g. "10.77.1.1/24", "10.77.1.2/24"). The pair disappears with either namespace.
pub fn link(a: &NetNs, a_cidr: &str, b: &NetNs, b_cidr: &str) {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let id = std::process::id() % 100_000;
    let (va, vb) = (format!("gva{id}x{n}"), format!("gvb{id}x{n}"));
    run(Command::new("ip").args([
        "link", "add", &va, "netns", &a.name, "type", "veth", "peer", "name", &vb, "netns", &b.name,
    ]));
    for (ns, dev, cidr) in [(a, &va, a_cidr), (b, &vb, b_cidr)] {
        run(Command::new("ip").args(["-n", &ns.name, "addr", "add", cidr, "dev", dev]));
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", dev, "up"]));
    }
}

/// A cgroup v2 directory made by this test under the unified hierarchy (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid host), removed on drop once its processes are gone.
pub struct TestCgroup {
    /// Its directory.
    pub dir: std::path::PathBuf,
    /// Its path as `/proc/PID/cgroup` shows it (`/gameday-test-...`).
    pub path: String,
}

impl TestCgroup {
    /// The unified hierarchy's mount point, if the host has one.
    pub fn unified_root() -> Option<std::path::PathBuf> {
        ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.threads").exists())
    }

    // Making one creates a cgroup on the host: not something `Default` should hide.
    #[allow(clippy::new_without_default)]
    /// Creates `gameday-test-<pid>-<n>` under the unified root. Call [`privileged`] first and
    /// check [`TestCgroup::unified_root`].
    pub fn new() -> TestCgroup {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let root = TestCgroup::unified_root().expect("a cgroup v2 hierarchy");
        let name = format!(
            "gameday-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = root.join(&name);
        std::fs::create_dir(&dir).expect("create the test cgroup");
        TestCgroup {
            dir,
            path: format!("/{name}"),
        }
    }

    /// Moves process `pid` (one the test started) into this cgroup.
    pub fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .expect("move the process into the test cgroup");
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Its processes are the test's children, killed and reaped by their own guards before
        // this runs; the kernel may take a moment to let go of them.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
