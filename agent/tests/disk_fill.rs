//! `disk_fill` against the real kernel, on small filesystems the test mounts itself (a 16 MiB
//! tmpfs, 32 MiB ext4 and ext2 images on loop devices), never the machine's own disks. Each
//! test checks the effect from outside (`df`, statvfs, a write that must fail with ENOSPC) and
//! that revert leaves the directory and its free space as they were. Root only.
// Integration tests start the real binaries, services and helper processes.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{privileged, wait_for};
use gameday_agent::faults::{self, disk_fill, Host};
use gameday_agent::journal::Journal;
use gameday_agent::live::LiveFaults;
use gameday_agent::policy::Policy;
use gameday_proto::fault::RawDiskFill;
use gameday_proto::{ByteSize, DiskFill, Fault};
use nix::sys::statvfs::statvfs;

const MIB: u64 = 1 << 20;

/// Filesystems the tests mount are at most this big; anything larger means the mount did not
/// happen and the directory is on a real disk, which must never be filled.
const MAX_TEST_FS: u64 = 64 * MIB;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small filesystem mounted on a fresh temporary directory: unmounted (lazily if busy), its
/// loop device detached and its image deleted on drop, however the test ends.
struct Mounted {
    dir: PathBuf,
    /// `(loop device, image file)` for image-backed filesystems.
    loop_dev: Option<(String, PathBuf)>,
    _tmp: tempfile::TempDir,
}

impl Mounted {
    /// A tmpfs of `size` (e.g. "16m"): supports fallocate, no root reserve.
    fn tmpfs(size: &str) -> Mounted {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir));
        let m = Mounted {
            dir,
            loop_dev: None,
            _tmp: tmp,
        };
        m.assert_small();
        m
    }

    /// A filesystem made by `mkfs` (e.g. `mkfs.ext4`) on a `size_mib` image, through a loop
    /// device the test attaches itself, so it knows exactly which one to detach.
    fn image(mkfs: &str, size_mib: u64) -> Mounted {
        let tmp = tempfile::tempdir().unwrap();
        let image = tmp.path().join("fs.img");
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(size_mib * MIB)
            .unwrap();
        run(Command::new(mkfs).args(["-q", "-F"]).arg(&image));
        let dev = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image))
        .trim()
        .to_string();
        // From here on, Drop detaches the device even if the mount fails.
        let m = Mounted {
            dir,
            loop_dev: Some((dev.clone(), image)),
            _tmp: tmp,
        };
        run(Command::new("mount").arg(&dev).arg(&m.dir));
        m.assert_small();
        m
    }

    fn assert_small(&self) {
        let total = fs_stat(&self.dir).0;
        assert!(
            total > 0 && total <= MAX_TEST_FS,
            "{} is {total} bytes: not the small test filesystem, refusing to go on",
            self.dir.display()
        );
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if let Some((dev, _image)) = &self.loop_dev {
            // Detaching an already auto-cleared device fails harmlessly.
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
    }
}

/// (total, available) bytes and `df`'s Use% of the filesystem holding `dir`, from statvfs.
fn fs_stat(dir: &Path) -> (u64, u64) {
    let s = statvfs(dir).unwrap();
    let unit = s.fragment_size();
    (s.blocks() * unit, s.blocks_available() * unit)
}

/// Use% as `df` prints it, read from `df` itself: the operator's view.
fn df_percent(dir: &Path) -> u64 {
    let out = run(Command::new("df").args(["--output=pcent"]).arg(dir));
    out.lines()
        .nth(1)
        .and_then(|l| l.trim().trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("cannot read df output {out:?}"))
}

fn host() -> Host {
    Host {
        processes: Arc::new(gameday_agent::os::RealOs::default()),
        network: Default::default(),
        disk: Default::default(),
        dns: Default::default(),
        controller: Vec::new(),
    }
}

/// A permissive policy that lets the agent fill `dir` (and only it) up to 100%.
fn policy_for(dir: &Path) -> Policy {
    let mut p = Policy::permissive();
    p.disk_fill = disk_fill::PolicyConfig {
        paths: vec![dir.to_path_buf()],
        max_fill_percent: 100,
        ..Default::default()
    };
    p
}

fn fault(dir: &Path, f: impl FnOnce(&mut RawDiskFill)) -> Fault {
    let mut spec = RawDiskFill {
        path: dir.to_path_buf(),
        ..RawDiskFill::default()
    };
    f(&mut spec);
    Fault::DiskFill(DiskFill::try_from(spec).expect("a valid disk_fill"))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn figure(e: &gameday_proto::v1::Evidence, name: &str) -> i64 {
    *e.figures
        .get(name)
        .unwrap_or_else(|| panic!("no figure {name}: {:?}", e.figures))
}

/// What one fill did, for the caller's own checks.
struct Cycle {
    applied: faults::Applied,
    reverted: faults::Reverted,
    apply_time: Duration,
    revert_time: Duration,
}

/// Prepares, applies, runs `during` while the fault holds, reverts; checks that revert
/// restores the listing and (within `tolerance`) the free space.
fn cycle(
    m: &Mounted,
    id: &str,
    fault: &Fault,
    tolerance: u64,
    during: impl FnOnce(&faults::Applied),
) -> Cycle {
    let (host, policy) = (host(), policy_for(&m.dir));
    let names_before = listing(&m.dir);
    let (_, free_before) = fs_stat(&m.dir);
    let plan = faults::prepare(fault, id, &policy, &host).unwrap();
    let started = Instant::now();
    let applied = faults::apply(&plan, &policy, &host).unwrap();
    let apply_time = started.elapsed();
    assert!(
        m.dir.join(format!(".gameday-fill-{id}")).exists(),
        "fill file missing"
    );
    during(&applied);
    let started = Instant::now();
    let reverted = faults::revert(&plan, &host).unwrap();
    let revert_time = started.elapsed();
    assert!(
        reverted.evidence.residue.is_empty(),
        "residue: {:?}",
        reverted.evidence.residue
    );
    assert_eq!(
        listing(&m.dir),
        names_before,
        "directory differs after revert"
    );
    // Freed blocks show up in statvfs at once on tmpfs and ext4; poll anyway, since that is a
    // filesystem's promise to keep, not ours.
    wait_for("free space to come back", Duration::from_secs(5), || {
        fs_stat(&m.dir).1 + tolerance >= free_before
    });
    // Reverting again is a no-op that succeeds.
    let again = faults::revert(&plan, &host).unwrap();
    assert!(again.evidence.residue.is_empty());
    Cycle {
        applied,
        reverted,
        apply_time,
        revert_time,
    }
}

/// Writes `bytes` of zeros to `path` as an unprivileged user (as a service would), fsynced.
/// Returns whether it fit.
fn service_write(path: &Path, bytes: u64) -> bool {
    let ok = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "dd",
            "if=/dev/zero",
        ])
        .arg(format!("of={}", path.display()))
        .args([
            "bs=64K",
            &format!("count={}", bytes / (64 * 1024)),
            "conv=fsync",
            "status=none",
        ])
        .status()
        .unwrap()
        .success();
    let _ = std::fs::remove_file(path);
    ok
}

/// Lets an unprivileged "service" write into the mount's root.
fn open_to_services(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
}

#[test]
fn tmpfs_fill_to_reaches_the_target_and_revert_restores() {
    if !privileged(&["mount", "umount", "df"]) {
        return;
    }
    let m = Mounted::tmpfs("16m");
    std::fs::write(m.dir.join("service.db"), vec![7u8; 512 * 1024]).unwrap();
    let c = cycle(
        &m,
        "fill90",
        &fault(&m.dir, |f| f.fill_to = Some(90)),
        0,
        |applied| {
            let pct = df_percent(&m.dir);
            assert!(
                (89..=91).contains(&pct),
                "df shows {pct}% used, expected 90"
            );
            assert!(
                applied.evidence.summary.contains("fallocate"),
                "{}",
                applied.evidence.summary
            );
            assert!(figure(&applied.evidence, "used_percent_after") >= 89);
            let (_, free_now) = fs_stat(&m.dir);
            assert_eq!(figure(&applied.evidence, "free_after"), free_now as i64);
        },
    );
    let e = &c.applied.evidence;
    // The filesystem allocates whole pages: the space taken is what was written, rounded up.
    let taken = figure(e, "free_before") - figure(e, "free_after");
    let written = figure(e, "bytes_written");
    assert!(
        (written..written + 4096).contains(&taken),
        "took {taken} bytes to write {written}"
    );
    assert_eq!(
        figure(&c.reverted.evidence, "bytes_removed"),
        figure(e, "bytes_written")
    );
}

#[test]
fn tmpfs_leave_free_starves_a_service_until_revert() {
    if !privileged(&["mount", "umount", "setpriv", "dd"]) {
        return;
    }
    let m = Mounted::tmpfs("16m");
    open_to_services(&m.dir);
    let probe = m.dir.join("service.bin");
    assert!(
        service_write(&probe, 2 * MIB),
        "the service can write before the fault"
    );
    let spec = fault(&m.dir, |f| f.leave_free = Some(ByteSize(MIB)));
    cycle(&m, "leave1m", &spec, 0, |applied| {
        let (_, avail) = fs_stat(&m.dir);
        assert!(
            avail <= MIB,
            "{avail} bytes available, expected at most 1 MiB"
        );
        assert!(
            !service_write(&probe, 2 * MIB),
            "a 2 MiB write must fail with ENOSPC"
        );
        assert!(figure(&applied.evidence, "free_after") <= MIB as i64);
    });
    assert!(
        service_write(&probe, 2 * MIB),
        "the service can write again after revert"
    );
}

#[test]
fn tmpfs_apply_and_revert_times_for_8_mib() {
    if !privileged(&["mount", "umount"]) {
        return;
    }
    let m = Mounted::tmpfs("16m");
    let spec = fault(&m.dir, |f| f.size = Some(ByteSize(8 * MIB)));
    let (mut applies, mut reverts) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let c = cycle(&m, &format!("t{i}"), &spec, 0, |a| {
            assert_eq!(figure(&a.evidence, "bytes_written"), (8 * MIB) as i64);
        });
        applies.push(c.apply_time);
        reverts.push(c.revert_time);
    }
    applies.sort();
    reverts.sort();
    let show = |v: &[Duration]| {
        format!(
            "min {:?}, median {:?}, max {:?}",
            v[0],
            v[v.len() / 2],
            v[v.len() - 1]
        )
    };
    println!(
        "disk_fill 8 MiB on tmpfs, 20 runs: apply {}; revert {}",
        show(&applies),
        show(&reverts)
    );
}

#[test]
fn ext4_counts_like_df_and_starves_an_unprivileged_service() {
    if !privileged(&[
        "mount",
        "umount",
        "mkfs.ext4",
        "losetup",
        "df",
        "setpriv",
        "dd",
    ]) {
        return;
    }
    // Default mkfs: 5% reserved for root, which df (and the fill) leave out of Use%.
    let m = Mounted::image("mkfs.ext4", 32);
    open_to_services(&m.dir);
    let c = cycle(
        &m,
        "ext4-90",
        &fault(&m.dir, |f| f.fill_to = Some(90)),
        64 * 1024,
        |_| {
            let pct = df_percent(&m.dir);
            assert!(
                (89..=91).contains(&pct),
                "df shows {pct}% used, expected 90"
            );
        },
    );
    assert!(
        c.applied.evidence.summary.contains("fallocate"),
        "{}",
        c.applied.evidence.summary
    );
    println!(
        "disk_fill on ext4 (fallocate): apply {:?}, revert {:?}, {}",
        c.apply_time, c.revert_time, c.applied.evidence.summary
    );
    let probe = m.dir.join("service.bin");
    let spec = fault(&m.dir, |f| f.leave_free = Some(ByteSize(MIB)));
    cycle(&m, "ext4-1m", &spec, 64 * 1024, |_| {
        assert!(
            !service_write(&probe, 2 * MIB),
            "a 2 MiB write must fail with ENOSPC"
        );
    });
    assert!(
        service_write(&probe, 2 * MIB),
        "the service can write again after revert"
    );
}

#[test]
fn ext2_without_fallocate_falls_back_to_writing() {
    if !privileged(&["mount", "umount", "mkfs.ext2", "losetup", "df"]) {
        return;
    }
    let m = Mounted::image("mkfs.ext2", 32);
    let c = cycle(
        &m,
        "ext2-90",
        &fault(&m.dir, |f| f.fill_to = Some(90)),
        64 * 1024,
        |_| {
            let pct = df_percent(&m.dir);
            assert!(
                (89..=91).contains(&pct),
                "df shows {pct}% used, expected 90"
            );
        },
    );
    let summary = &c.applied.evidence.summary;
    assert!(summary.contains("cannot fallocate"), "{summary}");
    println!(
        "disk_fill on ext2 (written, not fallocated): apply {:?}, revert {:?}, {summary}",
        c.apply_time, c.revert_time
    );
}

#[test]
fn a_crashed_agents_fill_file_is_gone_after_recovery() {
    if !privileged(&["mount", "umount"]) {
        return;
    }
    let m = Mounted::tmpfs("16m");
    let state = tempfile::tempdir().unwrap();
    let (_, free_before) = fs_stat(&m.dir);
    let names_before = listing(&m.dir);
    let host = Arc::new(host());
    let policy = Arc::new(policy_for(&m.dir));
    let spec = fault(&m.dir, |f| f.fill_to = Some(95));
    {
        let live = LiveFaults::new(
            host.clone(),
            policy.clone(),
            Journal::open(state.path()).unwrap(),
        );
        live.apply("crash-1", "run-1", &spec, Duration::from_secs(300))
            .unwrap();
        // The agent dies here: nothing reverts, only the journal remains.
    }
    assert!(df_percent(&m.dir) >= 94);
    let restarted = LiveFaults::new(host, policy, Journal::open(state.path()).unwrap());
    let (reverted, failures) = restarted.recover().unwrap();
    assert_eq!((reverted, failures.len()), (1, 0), "{failures:?}");
    assert_eq!(listing(&m.dir), names_before);
    assert!(fs_stat(&m.dir).1 >= free_before);
    assert!(Journal::open(state.path())
        .unwrap()
        .entries()
        .unwrap()
        .is_empty());
}
