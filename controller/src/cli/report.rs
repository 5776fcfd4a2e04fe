//! `gameday report RUN|SCENARIO -o md|html|json|junit|text [--out-file PATH]`: a run, or a
//! scenario's recent game days with their recovery trend, rendered from the controller's
//! history.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use gameday::render::{render, Format, ReportInput};
use gameday::report::{exit, ScenarioReport};
use gameday::store::{StoredRun, TrendPoint};
use gameday_proto::v1;

use super::remote::{self, ConnArgs};

/// `gameday report`'s arguments.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run id, or a scenario name (its most recent runs, with their trend).
    target: String,
    /// Output format (`--format` is the old spelling).
    #[arg(long, short, alias = "format", value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Write the report to this file (replaced atomically) instead of stdout.
    #[arg(long, value_name = "PATH", alias = "out")]
    out_file: Option<PathBuf>,
    /// How many of a scenario's most recent runs to include.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Fetches and renders the report.
pub async fn run(args: ReportArgs) -> anyhow::Result<i32> {
    let mut client = remote::connect(&args.conn).await?;
    let run = client
        .get_run(v1::GetRunRequest {
            run_id: args.target.clone(),
        })
        .await;
    let (report, trend): (ScenarioReport, Vec<TrendPoint>) = match run {
        Ok(r) => {
            let stored = StoredRun::try_from(r.into_inner()).with_context(|| {
                format!(
                    "the controller sent a run {} this CLI cannot read",
                    args.target
                )
            })?;
            (stored.scenario_report(), Vec::new())
        }
        Err(s) if s.code() == tonic::Code::NotFound => {
            let history = client
                .get_scenario_history(v1::GetScenarioHistoryRequest {
                    scenario: args.target.clone(),
                    limit: args.limit,
                })
                .await;
            match history {
                Ok(h) => {
                    let h = h.into_inner();
                    let report = serde_json::from_str(&h.report_json)
                        .context("the controller sent a scenario report this CLI cannot read")?;
                    let trend = serde_json::from_str(&h.trend_json)
                        .context("the controller sent a trend this CLI cannot read")?;
                    (report, trend)
                }
                Err(s) if s.code() == tonic::Code::NotFound => {
                    eprintln!(
                        "error: no run and no scenario named {:?} in the history",
                        args.target
                    );
                    return Ok(exit::INVALID);
                }
                Err(s) => return Err(remote::explain(s, args.conn.controller())),
            }
        }
        Err(s) => return Err(remote::explain(s, args.conn.controller())),
    };
    let text = render(&ReportInput::with_trend(&report, &trend), args.output);
    match &args.out_file {
        Some(path) => {
            super::output::write_replacing(path, &text)
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => super::output::print(&text)?,
    }
    Ok(exit::OK)
}
