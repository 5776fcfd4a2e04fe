//! `gameday runs` and `gameday runs show RUN`: the controller's run history, read as an
//! operator.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use gameday::grade::{fmt_us, Verdict};
use gameday::report::{exit, render_text};
use gameday::store::{parse_verdict, RunStatus, RunSummary, StoredRun};
use gameday_proto::v1;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use super::output::print;
use super::remote::{self, ConnArgs};
use super::table::{Align, Table};
use super::OutputFormat;

/// `gameday runs`: list past runs, or show one.
#[derive(Args, Debug)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: Option<RunsCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Subcommand, Debug)]
enum RunsCommand {
    /// Show one run: its report (as `gameday run` prints it) and its status.
    Show(ShowArgs),
}

/// Filters of the run list.
#[derive(Args, Debug)]
struct ListArgs {
    /// Only runs of this scenario (its name).
    #[arg(long)]
    scenario: Option<String>,
    /// Only runs graded with this verdict: PASS, FAIL, NO_IMPACT, INCONCLUSIVE, ABORTED, ERROR.
    #[arg(long, value_parser = parse_verdict)]
    verdict: Option<Verdict>,
    /// Only runs in this state: running, finished or interrupted.
    #[arg(long)]
    status: Option<RunStatus>,
    /// Runs started on or after this day (YYYY-MM-DD, UTC), moment (RFC 3339), or this long
    /// ago (`7d`, `12h`, `30m`).
    #[arg(long, value_parser = parse_since)]
    since: Option<u64>,
    /// Runs started on or before this day (YYYY-MM-DD, UTC, inclusive), or before this moment
    /// (RFC 3339) or this long ago (`1d`).
    #[arg(long, value_parser = parse_until)]
    until: Option<u64>,
    /// At most this many runs (newest first).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Args, Debug)]
struct ShowArgs {
    /// The run id (first column of `gameday runs`).
    run: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Runs `gameday runs ...`.
pub async fn run(args: RunsArgs) -> anyhow::Result<i32> {
    match args.command {
        Some(RunsCommand::Show(show)) => show_run(show).await,
        None => list(args.list).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<i32> {
    let mut client = remote::connect(&args.conn).await?;
    let request = v1::ListRunsRequest {
        scenario: args.scenario.unwrap_or_default(),
        verdict: args
            .verdict
            .map_or(v1::Verdict::Unspecified, v1::Verdict::from)
            .into(),
        status: args
            .status
            .map_or(v1::RunStatus::Unspecified, v1::RunStatus::from)
            .into(),
        since_unix_ms: args.since,
        until_unix_ms: args.until,
        limit: args.limit,
    };
    let response = match client.list_runs(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => return remote::refused(s, &args.conn),
    };
    let runs = response
        .runs
        .into_iter()
        .map(RunSummary::try_from)
        .collect::<Result<Vec<_>, _>>()
        .context("the controller sent a run list this CLI cannot read")?;
    match args.output {
        OutputFormat::Text => print(&format_runs(&runs))?,
        OutputFormat::Json => print(&format!("{}\n", serde_json::to_string_pretty(&runs)?))?,
    }
    Ok(exit::OK)
}

async fn show_run(args: ShowArgs) -> anyhow::Result<i32> {
    let mut client = remote::connect(&args.conn).await?;
    let response = match client
        .get_run(v1::GetRunRequest {
            run_id: args.run.clone(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return remote::refused(s, &args.conn),
    };
    let stored = StoredRun::try_from(response).with_context(|| {
        format!(
            "the controller sent a run {} this CLI cannot read",
            args.run
        )
    })?;
    match args.output {
        OutputFormat::Text => print(&format_show(&stored))?,
        OutputFormat::Json => print(&format!("{}\n", serde_json::to_string_pretty(&stored)?))?,
    }
    Ok(exit::OK)
}

/// A run's status line, then the report `gameday run` prints.
fn format_show(stored: &StoredRun) -> String {
    let mut out = match stored.status {
        RunStatus::Finished => "status: finished\n".to_string(),
        RunStatus::Running => {
            "status: running (not graded yet; the verdict below is a stand-in)\n".to_string()
        }
        RunStatus::Interrupted => format!(
            "status: interrupted — {} (never graded; samples up to the stop are shown)\n",
            stored.run.reason
        ),
    };
    out.push_str(&format!(
        "started: {}  finished: {}\n",
        iso_utc(stored.run.started_unix_ms),
        stored
            .finished_unix_ms
            .map(iso_utc)
            .unwrap_or_else(|| "-".into()),
    ));
    if !stored.started_by.is_empty() {
        out.push_str(&format!(
            "started by: {}  invocation: {}\n",
            stored.started_by, stored.invocation
        ));
    }
    out.push_str(&format!(
        "scenario sha256: {}{}\n",
        if stored.scenario_sha256.is_empty() {
            "-"
        } else {
            &stored.scenario_sha256
        },
        match &stored.scenario_changed_since {
            Some(previous) =>
                format!(" (the scenario text changed since its previous run, {previous})"),
            None => String::new(),
        }
    ));
    if stored.samples_pruned {
        out.push_str("probe samples: pruned by the retention setting (figures are kept)\n");
    }
    out.push('\n');
    out.push_str(&render_text(&stored.scenario_report()));
    out
}

/// The table `gameday runs` prints: the repeats of one invocation together (the store
/// lists them so), who started them, and the scenario text each ran — marked `*` where it
/// changed since the scenario's previous run.
pub fn format_runs(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "(no runs match)\n".into();
    }
    let mut table = Table::new(&[
        ("RUN", Align::Left),
        ("SCENARIO", Align::Left),
        ("#", Align::Right),
        ("STARTED BY", Align::Left),
        ("STATUS", Align::Left),
        ("VERDICT", Align::Left),
        ("STARTED", Align::Left),
        ("RECOVERY", Align::Right),
        ("RTO", Align::Right),
        ("TEXT", Align::Left),
    ]);
    for r in runs {
        let text = match (r.scenario_sha256.get(..8), r.scenario_changed) {
            (None, _) => "-".to_string(),
            (Some(short), false) => short.to_string(),
            (Some(short), true) => format!("{short}*"),
        };
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        table.row(vec![
            r.run_id.clone(),
            r.scenario.clone(),
            r.index.to_string(),
            or_dash(&r.started_by),
            r.status.to_string(),
            r.verdict
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            iso_utc(r.started_unix_ms),
            r.time_to_recover_us
                .map(fmt_us)
                .unwrap_or_else(|| "-".into()),
            fmt_us(r.rto_us),
            text,
        ]);
    }
    let mut out = table.render();
    if runs.iter().any(|r| r.scenario_changed) {
        out.push_str(
            "* the scenario's text changed since its previous run (TEXT: start of its sha256; \
             `gameday runs show RUN` names the run before)\n",
        );
    }
    out
}

/// `2025-03-04T05:06:07Z` for milliseconds since the Unix epoch.
pub fn iso_utc(unix_ms: u64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{unix_ms}ms"))
}

/// A day (`YYYY-MM-DD`, UTC), an RFC 3339 moment, or a time ago (`7d`, `12h`, `1h 30m`):
/// the day's start or the moment, in ms since the Unix epoch. `next_day` moves a day to the
/// next day's start (an inclusive end).
fn parse_moment(s: &str, next_day: bool) -> Result<u64, String> {
    parse_moment_at(s, next_day, gameday::timeline::unix_ms_now())
}

fn parse_moment_at(s: &str, next_day: bool, now_ms: u64) -> Result<u64, String> {
    let ago = s.trim().parse::<gameday_proto::Duration>().ok();
    if let Some(ago) = ago.filter(|_| s.trim().starts_with(|c: char| c.is_ascii_digit())) {
        let ago_ms = u64::try_from(ago.get().as_millis()).unwrap_or(u64::MAX);
        return now_ms
            .checked_sub(ago_ms)
            .ok_or_else(|| format!("{s:?} ago is before 1970"));
    }
    let to_ms = |t: OffsetDateTime| {
        u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| format!("{s:?} is before 1970"))
    };
    if let Ok(day) = Date::parse(s, format_description!("[year]-[month]-[day]")) {
        let day = if next_day {
            day.next_day()
                .ok_or_else(|| format!("{s:?} is the last day there is"))?
        } else {
            day
        };
        return to_ms(PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_utc());
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| {
            format!(
                "{s:?} is neither a day (YYYY-MM-DD), a moment (RFC 3339, e.g. \
                 2025-03-04T05:06:07Z) nor a time ago (7d, 12h, 30m)"
            )
        })
        .and_then(to_ms)
}

fn parse_since(s: &str) -> Result<u64, String> {
    parse_moment(s, false)
}

fn parse_until(s: &str) -> Result<u64, String> {
    parse_moment(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_midnights_and_until_includes_its_day() {
        assert_eq!(parse_since("1970-01-01"), Ok(0));
        assert_eq!(parse_since("2024-02-29"), Ok(1_709_164_800_000));
        assert_eq!(parse_until("2024-02-29"), Ok(1_709_251_200_000));
        assert_eq!(parse_until("2023-12-31"), Ok(1_704_067_200_000));
        assert_eq!(
            parse_since("2024-02-29T01:02:03.5+01:00"),
            Ok(1_709_164_800_000 + 2 * 60_000 + 3_500)
        );
        assert_eq!(
            parse_until("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000),
            "a moment is taken as is"
        );
        assert!(parse_since("2024-02-30").is_err());
        assert!(parse_since("1969-12-31")
            .unwrap_err()
            .contains("before 1970"));
        assert!(parse_since("yesterday").unwrap_err().contains("YYYY-MM-DD"));
    }

    #[test]
    fn moments_print_as_iso_8601_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_709_251_199_999), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn since_and_until_take_a_time_ago() {
        let now = 1_709_164_800_000;
        let day = 24 * 3600 * 1000;
        assert_eq!(parse_moment_at("7d", false, now), Ok(now - 7 * day));
        assert_eq!(parse_moment_at("12h", true, now), Ok(now - day / 2));
        assert_eq!(
            parse_moment_at("1h 30m", false, now),
            Ok(now - 90 * 60 * 1000)
        );
        assert!(parse_moment_at("100000000d", false, now)
            .unwrap_err()
            .contains("before 1970"));
        assert!(parse_moment_at("7", false, now)
            .unwrap_err()
            .contains("time ago (7d"));
        // The flag itself, through clap, as an operator types it.
        assert!(parse_since("7d").is_ok());
    }

    #[test]
    fn the_table_has_one_aligned_line_per_run() {
        let run = |id: &str, status, verdict, recovery| RunSummary {
            run_id: id.into(),
            scenario: "kill-web".into(),
            file: "k.toml".into(),
            index: 2,
            status,
            verdict,
            reason: String::new(),
            met_expectation: None,
            started_unix_ms: 1_709_164_800_000,
            finished_unix_ms: None,
            time_to_recover_us: recovery,
            rto_us: 2_000_000,
            started_by: "operator:alice".into(),
            invocation: "run-a".into(),
            scenario_sha256: "0123456789abcdef".into(),
            scenario_changed: false,
        };
        let mut changed = run("run-bb-1", RunStatus::Interrupted, None, None);
        changed.scenario_changed = true;
        changed.started_by = String::new();
        let out = format_runs(&[
            run(
                "run-a-2",
                RunStatus::Finished,
                Some(Verdict::Pass),
                Some(812_000),
            ),
            changed,
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(
            lines[0].starts_with("RUN       SCENARIO  #  STARTED BY      STATUS"),
            "{out}"
        );
        assert!(
            lines[1].contains(
                "2  operator:alice  finished     PASS     2024-02-29T00:00:00Z   812.0ms  2.000s  01234567"
            ),
            "{out}"
        );
        assert!(
            lines[2].contains("2  -               interrupted  -"),
            "{out}"
        );
        assert!(lines[2].ends_with("01234567*"), "{out}");
        assert!(
            lines[3].starts_with("* the scenario's text changed"),
            "{out}"
        );
        let col = |l: &str| l.find("2024").unwrap();
        assert_eq!(col(lines[1]), col(lines[2]), "aligned:\n{out}");
        assert!(format_runs(&[]).contains("(no runs match)"));
    }
}
