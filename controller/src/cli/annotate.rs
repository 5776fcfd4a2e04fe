//! `gameday annotate RUN "text"`: a timestamped note on a live or finished run, as an action
//! item or as the start of remediation; and `gameday revert RUN`, which ends a fault held for
//! people (`revert = "manual"`).

use clap::Args;
use gameday::report::exit;
use gameday_proto::v1;

use super::output::print;
use super::remote::{self, ConnArgs};

/// `gameday annotate`'s arguments.
#[derive(Args, Debug)]
pub struct AnnotateArgs {
    /// The run (`gameday runs` lists them).
    run: String,
    /// The note, one line.
    text: String,
    /// Mark it as an action item: reports collect them.
    #[arg(long, conflicts_with = "remediation_started")]
    action_item: bool,
    /// Mark the start of remediation: the first one gives time to remediation start.
    #[arg(long)]
    remediation_started: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Adds the note; exit 2 when the run is unknown or the text is refused.
pub async fn run(args: AnnotateArgs) -> anyhow::Result<i32> {
    let kind = if args.action_item {
        v1::AnnotationKind::ActionItem
    } else if args.remediation_started {
        v1::AnnotationKind::RemediationStarted
    } else {
        v1::AnnotationKind::Note
    };
    let mut client = remote::connect(&args.conn).await?;
    let request = v1::AnnotateRequest {
        run_id: args.run.clone(),
        text: args.text,
        kind: kind as i32,
    };
    match client.annotate(request).await {
        Ok(r) => {
            let r = r.into_inner();
            let when = if r.live { "live run" } else { "finished run" };
            print(&format!("annotated {when} {} as {}\n", args.run, r.author))?;
            Ok(exit::OK)
        }
        Err(s) => remote::refused(s, &args.conn),
    }
}

/// `gameday revert`'s arguments.
#[derive(Args, Debug)]
pub struct RevertArgs {
    /// The run whose faults to revert now (its scenario says `revert = "manual"`).
    run: String,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Asks the run to revert; exit 2 when it is not going on or does not wait for people.
pub async fn revert(args: RevertArgs) -> anyhow::Result<i32> {
    let mut client = remote::connect(&args.conn).await?;
    match client
        .revert(v1::RevertRequest {
            run_id: args.run.clone(),
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            print(&format!(
                "run {} reverts its faults now (asked by {}); it goes on observing\n",
                args.run, r.asked_by
            ))?;
            Ok(exit::OK)
        }
        Err(s) => remote::refused(s, &args.conn),
    }
}
