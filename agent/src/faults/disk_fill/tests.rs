//! `disk_fill` against the fake filesystem in `fake.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gameday_proto::fault::{DiskAmount, RawDiskFill};
use gameday_proto::v1::{FailureKind, UnavailableCause};
use gameday_proto::{ByteSize, DiskFill};

use super::fake::{FakeDisk, MIB};
use super::*;
use crate::policy::Policy;

/// [`super::prepare`] with the whole policy, as the agent's dispatch calls it.
fn prepare(
    spec: &DiskFill,
    fault_id: &str,
    policy: &Policy,
    host: &Host,
) -> Result<Plan, FaultError> {
    super::prepare(spec, fault_id, &policy.disk_fill, host)
}

/// [`super::available`] with the whole policy, as the agent's survey calls it.
fn available(policy: &Policy, host: &Host) -> Result<(), Unavailable> {
    super::available(&policy.disk_fill, host)
}

fn host(disk: &FakeDisk) -> Host {
    Host {
        processes: Arc::new(crate::os::RealOs::default()),
        network: Default::default(),
        disk: Backend::with_os(Arc::new(disk.clone()))
            .with_free_space_grace(Duration::from_millis(30)),
        dns: Default::default(),
        controller: Vec::new(),
    }
}

fn policy(paths: &[&str], max_fill_percent: u8) -> Policy {
    let mut p = Policy::permissive();
    p.disk_fill = PolicyConfig {
        paths: paths.iter().map(PathBuf::from).collect(),
        max_fill_percent,
        min_free: ByteSize(0),
    };
    p
}

fn spec(path: &str, amount: DiskAmount) -> DiskFill {
    DiskFill {
        path: PathBuf::from(path),
        amount,
        duration: None,
    }
}

fn fill_to(path: &str, p: u8) -> DiskFill {
    spec(path, DiskAmount::FillToPercent(p))
}

fn leave_free(path: &str, b: u64) -> DiskFill {
    spec(path, DiskAmount::LeaveFree(b))
}

fn size(path: &str, b: u64) -> DiskFill {
    spec(path, DiskAmount::Size(b))
}

fn figure(e: &Evidence, name: &str) -> i64 {
    *e.figures
        .get(name)
        .unwrap_or_else(|| panic!("no figure {name} in {:?}", e.figures))
}

#[test]
fn prepare_computes_each_amount_without_touching_the_disk() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let pol = policy(&["/srv/data"], 100);
    let p = prepare(&fill_to("/srv/data", 90), "f1", &pol, &h).unwrap();
    assert_eq!(p.planned_bytes, 60 * MIB);
    assert_eq!(p.file, PathBuf::from("/srv/data/.gameday-fill-f1"));
    assert_eq!(p.available_before, 70 * MIB);
    let p = prepare(&leave_free("/srv/data", MIB), "f1", &pol, &h).unwrap();
    assert_eq!(p.planned_bytes, 69 * MIB);
    let p = prepare(&size("/srv/data", 8 * MIB), "f1", &pol, &h).unwrap();
    assert_eq!(p.planned_bytes, 8 * MIB);
    assert!(disk.calls().is_empty(), "{:?}", disk.calls());
}

#[test]
fn prepare_explains_a_filesystem_already_above_fill_to() {
    let disk = FakeDisk::new();
    let err = prepare(
        &fill_to("/srv/data", 20),
        "f1",
        &policy(&["/srv"], 100),
        &host(&disk),
    )
    .unwrap_err();
    assert_eq!(err.kind(), FailureKind::Invalid, "{err:?}");
    assert!(err.to_string().contains("already 30% used"), "{err}");
}

#[test]
fn prepare_rejects_a_spec_without_an_amount_and_bad_fault_ids() {
    let disk = FakeDisk::new();
    let pol = policy(&["/srv/data"], 100);
    // A spec without an amount never reaches prepare: it is not a `DiskFill`.
    let raw = RawDiskFill {
        path: PathBuf::from("/srv/data"),
        ..RawDiskFill::default()
    };
    assert!(DiskFill::try_from(raw).is_err());
    for id in ["", "a/b", "../x", "a b"] {
        let err = prepare(&size("/srv/data", MIB), id, &pol, &host(&disk)).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Invalid, "{id}: {err:?}");
    }
}

#[test]
fn empty_policy_refuses_and_is_not_advertised() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let pol = policy(&[], 100);
    let err = prepare(&size("/srv/data", MIB), "f1", &pol, &h).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Policy, "{err:?}");
    assert!(err.to_string().contains("paths is empty"), "{err}");
    assert_eq!(
        available(&pol, &h).unwrap_err().cause,
        UnavailableCause::Policy
    );
    assert_eq!(
        available(&policy(&["/nowhere"], 100), &h)
            .unwrap_err()
            .cause,
        UnavailableCause::Host
    );
    assert!(available(&policy(&["/nowhere", "/srv/data"], 100), &h).is_ok());
    assert!(!crate::faults::capabilities(&pol, &h).contains(&"disk_fill".to_string()));
    assert!(
        crate::faults::capabilities(&policy(&["/srv/data"], 100), &h)
            .contains(&"disk_fill".to_string())
    );
}

#[test]
fn policy_containment_resolves_dots_and_symlinks() {
    let disk = FakeDisk::new();
    {
        let mut s = disk.state();
        // A symlink inside the allowed tree pointing out of it.
        s.links.insert("/srv/data/escape".into(), "/etc".into());
        // An allowed path that is itself a symlink to the real data directory.
        s.links.insert("/data".into(), "/mnt/disk".into());
    }
    let h = host(&disk);
    let pol = policy(&["/srv/data", "/data"], 100);
    let refused = |path: &str| {
        let err = prepare(&size(path, MIB), "f1", &pol, &h).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Policy, "{path}: {err:?}");
        assert!(
            err.to_string().contains("/etc") || err.to_string().contains(path),
            "{err}"
        );
        err
    };
    let err = refused("/etc");
    assert!(err.to_string().contains("policy.disk_fill.paths"), "{err}");
    refused("/srv/data/../../etc");
    refused("/srv/data/escape");
    // A sibling whose name merely starts the same way is not inside.
    refused("/srv/data2");
    refused("/srv");
    // Allowed: the path itself, through `..` that stays inside, and through a symlinked policy
    // path from either side.
    for ok in ["/srv/data", "/srv/data/../data", "/mnt/disk", "/data"] {
        let plan = prepare(&size(ok, MIB), "f1", &pol, &h).unwrap();
        assert!(plan.dir.is_absolute(), "{ok}");
    }
    assert_eq!(
        prepare(&size("/data", MIB), "f1", &pol, &h).unwrap().dir,
        PathBuf::from("/mnt/disk")
    );
}

#[test]
fn path_must_exist_and_be_a_directory() {
    let disk = FakeDisk::new();
    let pol = policy(&["/srv/data"], 100);
    let err = prepare(&size("/srv/data/missing", MIB), "f1", &pol, &host(&disk)).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = prepare(&size("/srv/data/app.db", MIB), "f1", &pol, &host(&disk)).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn ceiling_is_enforced_at_prepare_and_again_at_apply() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    // The default ceiling (95%) refuses a full fill.
    let err = prepare(&fill_to("/srv/data", 100), "f1", &policy(&["/srv"], 95), &h).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Policy, "{err:?}");
    assert!(err.to_string().contains("max_fill_percent = 95"), "{err}");
    // A size that fits at prepare, but the service writes 20 MiB before apply.
    let pol = policy(&["/srv"], 80);
    let plan = prepare(&size("/srv/data", 40 * MIB), "f1", &pol, &h).unwrap();
    disk.state().used_by_others += 20 * MIB;
    let err = apply(&plan, &h).unwrap_err();
    assert_eq!(err.kind(), FailureKind::Policy, "{err:?}");
    assert!(
        disk.calls().is_empty(),
        "nothing created: {:?}",
        disk.calls()
    );
}

#[test]
fn apply_recomputes_fill_to_on_the_filesystem_as_it_is() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let plan = prepare(&fill_to("/srv/data", 90), "f1", &policy(&["/srv"], 100), &h).unwrap();
    disk.state().used_by_others += 10 * MIB;
    let applied = apply(&plan, &h).unwrap();
    assert_eq!(
        figure(&applied.evidence, "bytes_written"),
        (50 * MIB) as i64
    );
    assert_eq!(figure(&applied.evidence, "used_percent_after"), 90);
}

#[test]
fn apply_fallocates_and_reports_evidence() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let plan = prepare(
        &leave_free("/srv/data", MIB),
        "f1",
        &policy(&["/srv"], 100),
        &h,
    )
    .unwrap();
    let applied = apply(&plan, &h).unwrap();
    let e = &applied.evidence;
    assert_eq!(figure(e, "bytes_written"), (69 * MIB) as i64);
    assert_eq!(figure(e, "free_before"), (70 * MIB) as i64);
    assert_eq!(figure(e, "free_after"), MIB as i64);
    assert_eq!(figure(e, "used_percent_after"), 99);
    assert!(e.summary.contains("fallocate"), "{}", e.summary);
    assert!(e.summary.contains(".gameday-fill-f1"), "{}", e.summary);
    assert_eq!(
        disk.calls(),
        vec![
            "create /srv/data/.gameday-fill-f1".to_string(),
            format!("fallocate {}", 69 * MIB)
        ]
    );
    assert_eq!(
        disk.state()
            .files
            .get(Path::new("/srv/data/.gameday-fill-f1")),
        Some(&(69 * MIB))
    );
}

#[test]
fn apply_writes_zeros_where_fallocate_is_unsupported() {
    let disk = FakeDisk::new();
    disk.state().fallocate_unsupported = true;
    let h = host(&disk);
    let want = 5 * MIB / 2;
    let plan = prepare(&size("/srv/data", want), "f1", &policy(&["/srv"], 100), &h).unwrap();
    let applied = apply(&plan, &h).unwrap();
    assert_eq!(figure(&applied.evidence, "bytes_written"), want as i64);
    assert!(
        applied.evidence.summary.contains("cannot fallocate"),
        "{}",
        applied.evidence.summary
    );
    let calls = disk.calls();
    assert_eq!(
        calls[1..],
        [
            format!("fallocate {want}"),
            format!("write {MIB} at 0"),
            format!("write {MIB} at {MIB}"),
            format!("write {} at {}", MIB / 2, 2 * MIB),
            "fsync".to_string(),
        ]
    );
}

#[test]
fn running_out_of_space_while_writing_is_the_point_not_an_error() {
    let disk = FakeDisk::new();
    {
        let mut s = disk.state();
        s.fallocate_unsupported = true;
        // Something else takes the space part-way through.
        s.write_budget = Some(3 * MIB + 123);
    }
    let h = host(&disk);
    let plan = prepare(
        &size("/srv/data", 8 * MIB),
        "f1",
        &policy(&["/srv"], 100),
        &h,
    )
    .unwrap();
    let applied = apply(&plan, &h).unwrap();
    assert_eq!(
        figure(&applied.evidence, "bytes_written"),
        (3 * MIB + 123) as i64
    );
    assert!(
        applied
            .evidence
            .summary
            .contains("ran out of space after 3.0MiB"),
        "{}",
        applied.evidence.summary
    );
    assert_eq!(disk.calls().last().unwrap(), "fsync");
}

#[test]
fn fallocate_out_of_space_falls_back_to_writing_what_fits() {
    let disk = FakeDisk::new();
    disk.state().fallocate_no_space = true;
    let h = host(&disk);
    let plan = prepare(
        &fill_to("/srv/data", 100),
        "f1",
        &policy(&["/srv"], 100),
        &h,
    )
    .unwrap();
    let applied = apply(&plan, &h).unwrap();
    assert_eq!(
        figure(&applied.evidence, "bytes_written"),
        (70 * MIB) as i64
    );
    assert_eq!(figure(&applied.evidence, "free_after"), 0);
    assert!(applied.evidence.summary.contains("after fallocate ran out"));
}

#[test]
fn a_failed_write_leaves_no_file() {
    let disk = FakeDisk::new();
    {
        let mut s = disk.state();
        s.fallocate_unsupported = true;
        s.write_eio = true;
    }
    let h = host(&disk);
    let plan = prepare(&size("/srv/data", MIB), "f1", &policy(&["/srv"], 100), &h).unwrap();
    let err = apply(&plan, &h).unwrap_err();
    assert_eq!(err.kind(), FailureKind::System, "{err:?}");
    assert!(
        err.to_string().contains("write /srv/data/.gameday-fill-f1"),
        "{err}"
    );
    assert!(!disk.state().files.contains_key(&plan.file));
}

#[test]
fn an_existing_fill_file_is_never_reused() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let pol = policy(&["/srv"], 100);
    let plan = prepare(&size("/srv/data", MIB), "f1", &pol, &h).unwrap();
    // Planted between prepare and apply.
    disk.state().files.insert(plan.file.clone(), 7);
    let err = apply(&plan, &h).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(disk.state().files.get(&plan.file), Some(&7));
    // And prepare refuses outright when it is already there.
    let err = prepare(&size("/srv/data", MIB), "f1", &pol, &h).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[test]
fn revert_deletes_the_file_and_is_idempotent() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let plan = prepare(
        &size("/srv/data", 8 * MIB),
        "f1",
        &policy(&["/srv"], 100),
        &h,
    )
    .unwrap();
    apply(&plan, &h).unwrap();
    let first = revert(&plan, &h).unwrap();
    assert!(
        first.evidence.residue.is_empty(),
        "{:?}",
        first.evidence.residue
    );
    assert_eq!(figure(&first.evidence, "bytes_removed"), (8 * MIB) as i64);
    assert_eq!(figure(&first.evidence, "free_after"), (70 * MIB) as i64);
    assert!(disk.calls().contains(&"fsync /srv/data".to_string()));
    assert!(!disk.state().files.contains_key(&plan.file));
    let second = revert(&plan, &h).unwrap();
    assert!(second.evidence.residue.is_empty());
    assert!(
        second.evidence.summary.contains("already gone"),
        "{}",
        second.evidence.summary
    );
    // A plan from the journal of an agent that crashed before applying: nothing to do.
    let never = prepare(&size("/srv/data", MIB), "f2", &policy(&["/srv"], 100), &h).unwrap();
    assert!(revert(&never, &h).unwrap().evidence.residue.is_empty());
}

#[test]
fn revert_after_the_filesystem_is_gone_succeeds() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let plan = prepare(&size("/srv/data", MIB), "f1", &policy(&["/srv"], 100), &h).unwrap();
    apply(&plan, &h).unwrap();
    {
        let mut s = disk.state();
        s.files.clear();
        s.dirs.remove(Path::new("/srv/data"));
    }
    let r = revert(&plan, &h).unwrap();
    assert!(r.evidence.residue.is_empty(), "{:?}", r.evidence.residue);
}

#[test]
fn residue_names_a_fill_file_still_present() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let plan = prepare(&size("/srv/data", MIB), "f1", &policy(&["/srv"], 100), &h).unwrap();
    apply(&plan, &h).unwrap();
    disk.state().remove_is_noop = true;
    let r = revert(&plan, &h).unwrap();
    assert_eq!(r.evidence.residue.len(), 1, "{:?}", r.evidence.residue);
    assert!(r.evidence.residue[0].contains("/srv/data/.gameday-fill-f1 is still present"));
}

#[test]
fn residue_reports_space_a_held_open_file_keeps() {
    let disk = FakeDisk::new();
    disk.state().held_open = true;
    let h = host(&disk);
    let plan = prepare(
        &size("/srv/data", 8 * MIB),
        "f1",
        &policy(&["/srv"], 100),
        &h,
    )
    .unwrap();
    apply(&plan, &h).unwrap();
    let r = revert(&plan, &h).unwrap();
    assert_eq!(r.evidence.residue.len(), 1, "{:?}", r.evidence.residue);
    assert!(
        r.evidence.residue[0].contains("did not come back"),
        "{:?}",
        r.evidence.residue
    );
}

#[test]
fn space_freed_a_moment_after_the_delete_is_not_residue() {
    let disk = FakeDisk::new();
    disk.state().held_open = true;
    let h = host(&disk);
    let plan = prepare(
        &size("/srv/data", 8 * MIB),
        "f1",
        &policy(&["/srv"], 100),
        &h,
    )
    .unwrap();
    apply(&plan, &h).unwrap();
    // A forked child closes its copy of the descriptor when it execs: the space comes back on
    // revert's third look.
    disk.state().ghost_released_after = Some(2);
    let r = revert(&plan, &h).unwrap();
    assert!(r.evidence.residue.is_empty(), "{:?}", r.evidence.residue);
    assert_eq!(disk.state().ghost_released_after, Some(0));
    assert_eq!(figure(&r.evidence, "free_after"), (70 * MIB) as i64);
}

#[test]
fn service_writes_during_the_fault_are_not_residue() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let pol = policy(&["/srv"], 100);
    let plan = prepare(&size("/srv/data", 8 * MIB), "f1", &pol, &h).unwrap();
    apply(&plan, &h).unwrap();
    {
        let mut s = disk.state();
        // The service logged 2 MiB while the fault held, and created files of its own.
        s.used_by_others += 2 * MIB;
        s.files.insert("/srv/data/wal.0001".into(), 0);
    }
    // Another disk_fill in the same directory, still live: noted, not blamed on this fault.
    let other = prepare(&size("/srv/data", MIB), "f2", &pol, &h).unwrap();
    apply(&other, &h).unwrap();
    let r = revert(&plan, &h).unwrap();
    assert!(r.evidence.residue.is_empty(), "{:?}", r.evidence.residue);
    assert!(
        r.evidence
            .summary
            .contains("another fill file is present: .gameday-fill-f2"),
        "{}",
        r.evidence.summary
    );
}

#[test]
fn revert_deletes_nothing_but_a_fill_file() {
    let disk = FakeDisk::new();
    let h = host(&disk);
    let mut plan = prepare(&size("/srv/data", MIB), "f1", &policy(&["/srv"], 100), &h).unwrap();
    for (dir, file) in [
        ("/srv/data", "/srv/data/app.db"),
        ("/srv/data", "/srv/.gameday-fill-f1"),
        ("/srv/data", "/srv/data/.gameday-fill-"),
        ("srv/data", "srv/data/.gameday-fill-f1"),
    ] {
        plan.dir = dir.into();
        plan.file = file.into();
        let err = revert(&plan, &h).unwrap_err();
        assert!(err.to_string().contains("refusing to touch"), "{err}");
        assert!(apply(&plan, &h).is_err());
    }
    assert!(disk.calls().is_empty(), "{:?}", disk.calls());
    assert!(disk
        .state()
        .files
        .contains_key(Path::new("/srv/data/app.db")));
}

#[test]
fn plans_round_trip_through_the_journal_format() {
    let disk = FakeDisk::new();
    let plan = prepare(
        &leave_free("/srv/data", MIB),
        "f1",
        &policy(&["/srv"], 90),
        &host(&disk),
    );
    // 69 MiB would leave the filesystem 99% used: over the 90% ceiling.
    assert!(plan.is_err());
    let plan = prepare(
        &fill_to("/srv/data", 90),
        "f1",
        &policy(&["/srv"], 90),
        &host(&disk),
    )
    .unwrap();
    let json = serde_json::to_string(&crate::faults::Plan::DiskFill(plan.clone())).unwrap();
    let back: crate::faults::Plan = serde_json::from_str(&json).unwrap();
    let crate::faults::Plan::DiskFill(back) = back else {
        panic!("{json}")
    };
    assert_eq!(back.file, plan.file);
    assert_eq!(back.amount, Amount::FillTo(90));
    assert_eq!(back.limits.max_fill_percent, 90);
}
