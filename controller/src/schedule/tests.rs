//! Unit tests of schedules: config validation, cron slots across DST, windows, missed firings
//! and the state file.

use chrono::{DateTime, NaiveTime, TimeZone as _, Utc};

use super::*;

/// A scenario file that exists (its contents only matter at firing time).
fn scenario_file(dir: &tempfile::TempDir) -> PathBuf {
    let p = dir.path().join("s.toml");
    std::fs::write(&p, "name = \"x\"\n").unwrap();
    p
}

fn config(dir: &tempfile::TempDir, cron: &str, tz: &str) -> ScheduleConfig {
    ScheduleConfig {
        name: "nightly".into(),
        scenario: scenario_file(dir),
        cron: cron.into(),
        timezone: tz.into(),
        window: None,
        missed: MissedPolicy::Skip,
        webhook: None,
        webhook_format: Default::default(),
        webhook_ca: None,
        report_url: None,
    }
}

fn schedule(cron: &str, tz: &str) -> Schedule {
    let dir = tempfile::tempdir().unwrap();
    config(&dir, cron, tz).compile().unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

#[test]
fn a_valid_schedule_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, "*/2 * * * * *", "Europe/Paris");
    c.window = Some(WindowConfig {
        start: "09:00".into(),
        end: "17:30".into(),
    });
    c.webhook = Some("https://hooks.example.com/services/T/B/secret".into());
    c.report_url = Some("https://reports.example.com/runs/{run_id}".into());
    assert_eq!(c.validate(), Ok(()));
    let s = c.compile().unwrap();
    assert!(!format!("{s:?}").contains("secret"), "{s:?}");
    assert_eq!(
        s.webhook.as_ref().unwrap().redacted(),
        "https://hooks.example.com/..."
    );
    assert_eq!(
        s.webhook.as_ref().unwrap().report_link("run-1"),
        "https://reports.example.com/runs/run-1"
    );
}

#[test]
fn validation_errors_name_the_schedule_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    type Change = Box<dyn Fn(&mut ScheduleConfig)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|c| c.cron = "61 * * * *".into()),
            "invalid cron \"61 * * * *\"",
        ),
        (Box::new(|c| c.cron = "* * *".into()), "invalid cron"),
        (
            Box::new(|c| c.timezone = "Mars/Olympus".into()),
            "unknown time zone \"Mars/Olympus\"",
        ),
        (
            Box::new(|c| {
                c.window = Some(WindowConfig {
                    start: "9am".into(),
                    end: "17:00".into(),
                })
            }),
            "invalid window: start \"9am\": expected HH:MM",
        ),
        (
            Box::new(|c| {
                c.window = Some(WindowConfig {
                    start: "09:00".into(),
                    end: "25:00".into(),
                })
            }),
            "invalid window: end \"25:00\"",
        ),
        (
            Box::new(|c| {
                c.window = Some(WindowConfig {
                    start: "09:00".into(),
                    end: "09:00".into(),
                })
            }),
            "leave the window out",
        ),
        (
            Box::new(|c| c.scenario = "/nonexistent/pause.toml".into()),
            "scenario file /nonexistent/pause.toml does not exist",
        ),
        (
            Box::new(|c| c.webhook = Some("ftp://example.com/x".into())),
            "must start with http:// or https://",
        ),
        (
            Box::new(|c| c.webhook = Some("https://u:p@example.com/x".into())),
            "must not carry credentials",
        ),
        (
            Box::new(|c| {
                c.webhook = Some("http://127.0.0.1:9/x".into());
                c.report_url = Some("https://reports.example.com/".into());
            }),
            "report_url must contain {run_id}",
        ),
        (
            Box::new(|c| {
                c.webhook = Some("http://127.0.0.1:9/x".into());
                c.webhook_ca = Some("/nonexistent/ca.pem".into());
            }),
            "only applies to an https:// webhook",
        ),
        (
            Box::new(|c| c.report_url = Some("https://r/{run_id}".into())),
            "only make sense with a webhook",
        ),
    ];
    for (change, expected) in cases {
        let mut c = config(&dir, "0 0 3 * * *", "UTC");
        change(&mut c);
        let e = c.validate().expect_err(expected);
        assert!(
            e.contains("schedule \"nightly\"") && e.contains(expected),
            "{e:?} should name the schedule and say {expected:?}"
        );
    }
    let mut c = config(&dir, "0 0 3 * * *", "UTC");
    c.name = "bad name".into();
    assert!(c.validate().unwrap_err().contains("\"bad name\""));
}

#[test]
fn duplicate_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = config(&dir, "0 0 3 * * *", "UTC");
    let e = validate_all(&[a.clone(), a]).unwrap_err();
    assert!(e.contains("\"nightly\" is defined twice"), "{e}");
}

#[test]
fn the_config_loader_resolves_paths_and_refuses_a_bad_schedule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scenarios")).unwrap();
    std::fs::write(dir.path().join("scenarios/pause.toml"), "").unwrap();
    let write = |schedule: &str| {
        let path = dir.path().join("controller.toml");
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\n\n[tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n\n[[schedules]]\n{schedule}"
            ),
        )
        .unwrap();
        crate::config::ControllerConfig::load(&path)
    };
    let ok = write(
        "name = \"monthly\"\nscenario = \"scenarios/pause.toml\"\ncron = \"0 10 1-7 * MON\"\ntimezone = \"Europe/Paris\"\nwindow = { start = \"09:00\", end = \"17:00\" }\nmissed = \"run_once\"\n",
    )
    .unwrap();
    assert_eq!(
        ok.schedules[0].scenario,
        dir.path().join("scenarios/pause.toml")
    );
    assert_eq!(ok.schedules[0].missed, MissedPolicy::RunOnce);
    let bad = write(
        "name = \"monthly\"\nscenario = \"scenarios/pause.toml\"\ncron = \"0 10 1-7 * MON\"\ntimezone = \"Europe/Pariss\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("controller.toml") && bad.contains("schedule \"monthly\": unknown time zone"),
        "{bad}"
    );
    let unknown = write(
        "name = \"m\"\nscenario = \"scenarios/pause.toml\"\ncron = \"0 10 * * *\"\nmised = \"skip\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("unknown field `mised`"), "{unknown}");
}

#[test]
fn a_daily_slot_keeps_its_local_time_across_dst() {
    // 09:00 in New York is 14:00 UTC in winter (EST) and 13:00 UTC in summer (EDT); the
    // clocks went forward on 2025-03-09.
    let s = schedule("0 9 * * *", "America/New_York");
    assert_eq!(
        s.next_after(utc("2025-03-07T15:00:00Z")),
        Some(utc("2025-03-08T14:00:00Z"))
    );
    assert_eq!(
        s.next_after(utc("2025-03-08T15:00:00Z")),
        Some(utc("2025-03-09T13:00:00Z"))
    );
    // And back on 2025-11-02.
    assert_eq!(
        s.next_after(utc("2025-11-01T14:00:00Z")),
        Some(utc("2025-11-02T14:00:00Z"))
    );
}

#[test]
fn a_slot_in_the_spring_gap_runs_right_after_it_and_an_autumn_slot_runs_once() {
    // Paris skipped 02:00-03:00 on 2025-03-30: a 02:30 job runs at 03:00 CEST (01:00 UTC).
    let s = schedule("0 30 2 * * *", "Europe/Paris");
    assert_eq!(
        s.next_after(utc("2025-03-29T12:00:00Z")),
        Some(utc("2025-03-30T01:00:00Z"))
    );
    // 02:30 happened twice on 2025-10-26 (00:30 and 01:30 UTC): the job runs once.
    let first = s.next_after(utc("2025-10-25T12:00:00Z")).unwrap();
    assert_eq!(first, utc("2025-10-26T00:30:00Z"));
    assert_eq!(s.next_after(first), Some(utc("2025-10-27T01:30:00Z")));
}

#[test]
fn an_interval_job_skips_the_hour_that_does_not_exist() {
    let s = schedule("0 */30 * * * *", "Europe/Paris");
    // 01:30 CET is 00:30 UTC; 02:00 and 02:30 do not exist; next is 03:00 CEST = 01:00 UTC.
    assert_eq!(
        s.next_after(utc("2025-03-30T00:30:00Z")),
        Some(utc("2025-03-30T01:00:00Z"))
    );
    assert_eq!(
        s.slots_between(utc("2025-03-30T00:00:00Z"), utc("2025-03-30T01:00:00Z"))
            .count,
        2
    );
}

#[test]
fn windows_contain_their_start_not_their_end_and_may_cross_midnight() {
    let day = Window::parse("09:00", "17:00").unwrap();
    assert!(!day.contains(hm(8, 59)));
    assert!(day.contains(hm(9, 0)));
    assert!(day.contains(hm(16, 59)));
    assert!(!day.contains(hm(17, 0)));
    assert_eq!(day.to_string(), "09:00-17:00");
    let night = Window::parse("22:00", "06:00").unwrap();
    assert!(night.contains(hm(23, 30)));
    assert!(night.contains(hm(0, 0)));
    assert!(night.contains(hm(5, 59)));
    assert!(!night.contains(hm(6, 0)));
    assert!(!night.contains(hm(12, 0)));
    let to_midnight = Window::parse("18:00", "24:00").unwrap();
    assert!(to_midnight.contains(hm(23, 59)));
    assert!(!to_midnight.contains(hm(0, 0)));
    for bad in ["9", "09:0", "09-00", "xx:00", "24:30", "12:60"] {
        assert!(Window::parse(bad, "10:00").is_err(), "{bad}");
    }
}

#[test]
fn the_window_is_read_in_the_schedules_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, "0 * * * *", "Asia/Tokyo");
    c.window = Some(WindowConfig {
        start: "09:00".into(),
        end: "17:00".into(),
    });
    let s = c.compile().unwrap();
    // 01:00 UTC is 10:00 in Tokyo; 09:00 UTC is 18:00 there.
    assert!(s.in_window(utc("2025-06-02T01:00:00Z")));
    assert!(!s.in_window(utc("2025-06-02T09:00:00Z")));
    // The next run inside the window, from 09:00 UTC (18:00 JST), is 09:00 JST next day.
    assert_eq!(
        s.next_run_after(utc("2025-06-02T09:00:00Z")),
        Some(utc("2025-06-03T00:00:00Z"))
    );
    assert!(schedule("0 * * * *", "UTC").in_window(utc("2025-06-02T09:00:00Z")));
}

#[test]
fn a_restart_counts_what_it_missed_and_follows_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, "0 0 * * *", "UTC");
    let now = utc("2025-06-10T12:00:00Z");
    let s = c.compile().unwrap();
    assert_eq!(s.plan_start(None, now), StartPlan::Fresh);
    assert_eq!(
        s.plan_start(Some(utc("2025-06-10T00:00:00Z")), now),
        StartPlan::UpToDate
    );
    let missed = Slots {
        count: 3,
        more: false,
        latest: Some(utc("2025-06-10T00:00:00Z")),
    };
    assert_eq!(
        s.plan_start(Some(utc("2025-06-07T00:00:00Z")), now),
        StartPlan::SkipMissed(missed)
    );
    c.missed = MissedPolicy::RunOnce;
    let s = c.compile().unwrap();
    assert_eq!(
        s.plan_start(Some(utc("2025-06-07T00:00:00Z")), now),
        StartPlan::CatchUp(missed)
    );
    // A slot exactly at the handled instant was handled.
    assert_eq!(
        s.plan_start(
            Some(utc("2025-06-10T00:00:00Z")),
            utc("2025-06-10T00:00:00Z")
        ),
        StartPlan::UpToDate
    );
}

#[test]
fn counting_a_long_outage_is_bounded() {
    let s = schedule("* * * * * *", "UTC");
    let slots = s.slots_between(utc("2024-01-01T00:00:00Z"), utc("2025-01-01T00:00:00Z"));
    assert!(slots.more);
    assert_eq!(slots.describe(), "at least 10000");
    assert_eq!(slots.latest, Some(utc("2025-01-01T00:00:00Z")));
}

#[test]
fn the_state_file_round_trips_and_forgets_removed_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = StateStore::open(&data, &["a", "b"]);
    assert_eq!(store.get("a"), ScheduleState::default());
    let t = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    store.update("a", |s| s.handled_until = Some(t));
    store.update("b", |s| {
        s.last_skip = Some(LastSkip {
            slot: t,
            reason: "outside its window".into(),
        })
    });
    let text = std::fs::read_to_string(data.join(STATE_FILE)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(
        json["schedules"]["a"]["handled_until"],
        "2025-01-02T03:04:05Z"
    );
    let reopened = StateStore::open(&data, &["a"]);
    assert_eq!(reopened.get("a").handled_until, Some(t));
    assert_eq!(reopened.get("b"), ScheduleState::default());
    // Only temporary files that were renamed into place: nothing else is left behind.
    let names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [STATE_FILE]);
}

#[test]
fn an_unreadable_state_file_means_no_history() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
    let store = StateStore::open(dir.path(), &["a"]);
    assert_eq!(store.get("a"), ScheduleState::default());
}

#[test]
fn nth_weekday_and_nicknames_parse() {
    let first_monday = schedule("0 10 * * MON#1", "Europe/Paris");
    assert_eq!(
        first_monday.next_after(utc("2025-06-10T00:00:00Z")),
        Some(utc("2025-07-07T08:00:00Z"))
    );
    let monthly = schedule("@monthly", "UTC");
    assert_eq!(
        monthly.next_after(utc("2025-06-10T00:00:00Z")),
        Some(utc("2025-07-01T00:00:00Z"))
    );
}

#[test]
fn day_of_month_and_weekday_together_mean_either_as_in_vixie_cron() {
    use std::str::FromStr as _;
    // "1-7 * MON" is any of the first seven days OR any Monday: Tuesday the 1st fires.
    let cron = croner::Cron::from_str("0 10 1-7 * MON").unwrap();
    let from = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let next = cron.find_next_occurrence(&from, false).unwrap();
    assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap());
}

#[test]
fn the_first_weekday_of_the_month_is_written_with_a_hash() {
    use std::str::FromStr as _;
    // 2026-12-01 is a Tuesday: the first Monday is the 7th, not any day from the 1st to the 7th.
    let cron = croner::Cron::from_str("0 10 * * MON#1").unwrap();
    let from = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
    let next = cron.find_next_occurrence(&from, false).unwrap();
    assert_eq!(next, Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap());
}
