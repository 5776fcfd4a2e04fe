//! `gameday schedules`: the controller's schedules with their next run (in the schedule's time
//! zone and in UTC) and their last run, read as an operator.

use clap::Args;
use gameday::report::exit;
use gameday_proto::v1;

use super::remote::{self, ConnArgs};

/// `gameday schedules`'s arguments.
#[derive(Args, Debug)]
pub struct SchedulesArgs {
    #[command(flatten)]
    conn: ConnArgs,
}

/// Lists the schedules.
pub async fn run(args: SchedulesArgs) -> anyhow::Result<i32> {
    let mut client = remote::connect(&args.conn).await?;
    match client.list_schedules(v1::ListSchedulesRequest {}).await {
        Ok(list) => {
            print!("{}", format_schedules(&list.into_inner().schedules));
            Ok(exit::OK)
        }
        Err(s) => Err(remote::explain(s, args.conn.controller())),
    }
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
    let header = [
        "NAME",
        "CRON",
        "TIMEZONE",
        "WINDOW",
        "MISSED",
        "NEXT RUN (LOCAL)",
        "NEXT RUN (UTC)",
        "LAST RUN",
    ]
    .map(String::from);
    let rows: Vec<[String; 8]> = schedules
        .iter()
        .map(|s| {
            let last = if s.running {
                format!("running since {}", s.last_run_utc)
            } else if s.last_run_utc.is_empty() {
                "never".into()
            } else {
                format!("{} {}", s.last_run_utc, s.last_outcome)
            };
            [
                s.name.clone(),
                s.cron.clone(),
                s.timezone.clone(),
                or(&s.window, "any time"),
                s.missed.clone(),
                or(&s.next_run_local, "none"),
                or(&s.next_run_utc, "none"),
                last,
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
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
    }
}
