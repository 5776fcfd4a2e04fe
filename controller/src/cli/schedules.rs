//! `gameday schedules`: the controller's schedules with their next run (in the schedule's time
//! zone and in UTC) and their last run, read as an operator.

use clap::Args;
use gameday::report::exit;
use gameday_proto::v1;

use super::output::print;
use super::remote::{self, ConnArgs};
use super::table::{Align, Table};
use super::OutputFormat;

/// `gameday schedules`'s arguments.
#[derive(Args, Debug)]
pub struct SchedulesArgs {
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Lists the schedules.
pub async fn run(args: SchedulesArgs) -> anyhow::Result<i32> {
    let mut client = remote::connect(&args.conn).await?;
    let schedules = match client.list_schedules(v1::ListSchedulesRequest {}).await {
        Ok(list) => list.into_inner().schedules,
        Err(s) => return Err(remote::explain(s, args.conn.controller())),
    };
    match args.output {
        OutputFormat::Text => print(&format_schedules(&schedules))?,
        OutputFormat::Json => print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&schedules_json(&schedules))?
        ))?,
    }
    Ok(exit::OK)
}

/// `gameday schedules -o json`: one object per schedule, empty fields as null.
fn schedules_json(schedules: &[v1::ScheduleInfo]) -> serde_json::Value {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    serde_json::Value::Array(
        schedules
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "scenario": s.scenario,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "window": some(&s.window),
                    "missed": s.missed,
                    "next_run_local": some(&s.next_run_local),
                    "next_run_utc": some(&s.next_run_utc),
                    "last_run_utc": some(&s.last_run_utc),
                    "last_outcome": some(&s.last_outcome),
                    "last_skip_utc": some(&s.last_skip_utc),
                    "last_skip_reason": some(&s.last_skip_reason),
                    "running": s.running,
                    "webhook": some(&s.webhook),
                })
            })
            .collect(),
    )
}

/// The table `gameday schedules` prints, then a note per schedule whose last firing was
/// skipped.
pub fn format_schedules(schedules: &[v1::ScheduleInfo]) -> String {
    if schedules.is_empty() {
        return "(no schedules configured)\n".into();
    }
    let or = |s: &str, none: &str| {
        if s.is_empty() {
            none.to_string()
        } else {
            s.to_string()
        }
    };
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("CRON", Align::Left),
        ("TIMEZONE", Align::Left),
        ("WINDOW", Align::Left),
        ("MISSED", Align::Left),
        ("NEXT RUN (LOCAL)", Align::Left),
        ("NEXT RUN (UTC)", Align::Left),
        ("LAST RUN", Align::Left),
    ]);
    for s in schedules {
        let last = if s.running {
            format!("running since {}", s.last_run_utc)
        } else if s.last_run_utc.is_empty() {
            "never".into()
        } else {
            format!("{} {}", s.last_run_utc, s.last_outcome)
        };
        table.row(vec![
            s.name.clone(),
            s.cron.clone(),
            s.timezone.clone(),
            or(&s.window, "any time"),
            s.missed.clone(),
            or(&s.next_run_local, "none"),
            or(&s.next_run_utc, "none"),
            last,
        ]);
    }
    let mut out = table.render();
    for s in schedules.iter().filter(|s| !s.last_skip_utc.is_empty()) {
        out.push_str(&format!(
            "{}: last skipped the {} firing: {}\n",
            s.name, s.last_skip_utc, s.last_skip_reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_next_and_last_runs_and_skips() {
        let s = v1::ScheduleInfo {
            name: "monthly".into(),
            scenario: "/etc/gameday/pause.toml".into(),
            cron: "0 0 10 1-7 * MON".into(),
            timezone: "Europe/Paris".into(),
            window: "09:00-17:00".into(),
            missed: "run_once".into(),
            next_run_local: "2025-07-07T10:00:00+02:00".into(),
            next_run_utc: "2025-07-07T08:00:00Z".into(),
            last_run_utc: "2025-06-02T08:00:01Z".into(),
            last_outcome: "PASS".into(),
            last_skip_utc: "2025-05-05T08:00:00Z".into(),
            last_skip_reason: "outside its window".into(),
            running: false,
            webhook: "slack".into(),
        };
        let out = format_schedules(&[s]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{out}");
        assert!(lines[1].contains("monthly") && lines[1].contains("Europe/Paris"));
        assert!(lines[1].contains("2025-07-07T10:00:00+02:00"));
        assert!(lines[1].contains("2025-07-07T08:00:00Z"));
        assert!(lines[1].ends_with("2025-06-02T08:00:01Z PASS"), "{out}");
        assert!(lines[2].contains("outside its window"), "{out}");
        assert_eq!(format_schedules(&[]), "(no schedules configured)\n");
        let json = schedules_json(&[s_again()]);
        assert_eq!(json[0]["name"], "monthly");
        assert_eq!(json[0]["window"], serde_json::Value::Null);
        assert_eq!(json[0]["running"], true);
    }

    fn s_again() -> v1::ScheduleInfo {
        v1::ScheduleInfo {
            name: "monthly".into(),
            running: true,
            ..Default::default()
        }
    }
}
