//! `[[remediation]]`: runbook steps gameday runs during a run, as automation would: a command
//! on an agent's host (argv, or a shell line where that agent's policy allows one) or a call to
//! a runbook webhook the controller's config names. Each starts on a trigger: the detecting
//! alert arriving, a delay after the fault, or a stage of recovery reached.

use std::collections::HashMap;
use std::ops::Range;

use gameday_proto::Duration;
use toml::de::DeTable;
use toml::Spanned;

use super::echo;
use super::error::Diagnostics;
use super::fields::{Field, Fields};
use super::limits::{MAX_OBSERVE, MAX_STEPS, MAX_STEP_TIMEOUT};
use super::names::check_name;
use super::settings::{bounded_duration, duration, Lower};
use super::{RemediationStep, StepAction, StepCommand, StepTrigger};

/// A step's timeout when the scenario gives none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_millis(60_000);

/// What the rest of the scenario a step may refer to.
pub(crate) struct Context<'a> {
    /// The scenario has `[detect]`, so `when = "alert"` has an alert to wait for.
    pub detect: bool,
    /// The stage names.
    pub stages: &'a [String],
    /// The observe window: a delay beyond it never comes.
    pub observe: Option<Duration>,
}

/// Reads every `[[remediation]]` table.
pub(crate) fn steps(
    diagnostics: &mut Diagnostics<'_>,
    tables: Vec<(Range<usize>, &DeTable<'_>)>,
    cx: &Context<'_>,
) -> Vec<Option<RemediationStep>> {
    if tables.len() > MAX_STEPS {
        diagnostics.error(
            tables[MAX_STEPS].0.clone(),
            format!(
                "at most {MAX_STEPS} remediation steps, got {}",
                tables.len()
            ),
        );
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    tables
        .into_iter()
        .map(|(span, table)| {
            let raw = RawStep::read(diagnostics, table);
            let action = action(diagnostics, &raw, &span);
            let when = trigger(diagnostics, &raw.when, &span, cx);
            let timeout = bounded_duration(
                diagnostics,
                "timeout",
                &raw.timeout,
                DEFAULT_STEP_TIMEOUT,
                Lower::Positive,
                MAX_STEP_TIMEOUT,
            );
            let name = step_name(diagnostics, &raw.name, action.as_ref(), &span, &mut seen);
            Some(RemediationStep {
                name: name?,
                action: action?,
                timeout: timeout?,
                when: when?,
            })
        })
        .collect()
}

/// The step's name: as written, or the command's file name, or the runbook's name; unique.
fn step_name(
    diagnostics: &mut Diagnostics<'_>,
    written: &Field<String>,
    action: Option<&StepAction>,
    span: &Range<usize>,
    seen: &mut HashMap<String, usize>,
) -> Option<String> {
    let (name, at) = match written {
        Field::Given(n) => {
            if let Err(e) = check_name(n.get_ref()) {
                diagnostics.error(n.span(), format!("step names {e}"));
                return None;
            }
            (n.get_ref().clone(), n.span())
        }
        Field::Invalid => return None,
        Field::Absent => (action?.default_name(), span.clone()),
    };
    if let Some(first) = seen.get(&name) {
        let line = diagnostics.line(*first);
        diagnostics.error(
            at,
            format!(
                "two remediation steps are named {} (the first on line {line}): give each a `name`",
                echo::quoted(&name)
            ),
        );
        return None;
    }
    seen.insert(name.clone(), at.start);
    Some(name)
}

/// What the step does: exactly one of `run`, `shell` and `webhook`; an agent with the first two.
fn action(
    diagnostics: &mut Diagnostics<'_>,
    raw: &RawStep,
    span: &Range<usize>,
) -> Option<StepAction> {
    let given = [
        ("run", !raw.run.is_absent()),
        ("shell", !raw.shell.is_absent()),
        ("webhook", !raw.webhook.is_absent()),
    ];
    let named: Vec<&str> = given.iter().filter(|g| g.1).map(|g| g.0).collect();
    if named.len() != 1 {
        let what = if named.is_empty() {
            "a remediation step needs one of `run` (a command as argv, on `agent`), `shell` (a \
             command line, where the agent's policy allows a shell) or `webhook` (a runbook \
             named in the controller's config)"
                .to_string()
        } else {
            format!(
                "a remediation step does one thing: it sets {}; keep one",
                named
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        };
        diagnostics.error(span.clone(), what);
        return None;
    }
    if let Field::Given(hook) = &raw.webhook {
        if let Field::Given(agent) = &raw.agent {
            diagnostics.error(
                agent.span(),
                "`agent` does not apply to a `webhook` step: the controller calls the runbook",
            );
            return None;
        }
        if let Err(e) = check_name(hook.get_ref()) {
            diagnostics.error(hook.span(), format!("`webhook` {e}"));
            return None;
        }
        return Some(StepAction::Webhook {
            runbook: hook.get_ref().clone(),
        });
    }
    let command = match (&raw.run, &raw.shell) {
        (Field::Given(argv), _) => argv_command(diagnostics, argv)?,
        (_, Field::Given(line)) if line.get_ref().trim().is_empty() => {
            diagnostics.error(
                line.span(),
                "`shell` is empty: give the command line to run",
            );
            return None;
        }
        (_, Field::Given(line)) => StepCommand::Shell(line.get_ref().clone()),
        _ => return None,
    };
    let agent = match &raw.agent {
        Field::Given(a) => match check_name(a.get_ref()) {
            Ok(()) => a.get_ref().clone(),
            Err(e) => {
                diagnostics.error(a.span(), format!("`agent` {e}"));
                return None;
            }
        },
        Field::Absent => {
            diagnostics.error(
                span.clone(),
                "a remediation step that runs a command needs `agent`: the agent whose host runs it",
            );
            return None;
        }
        Field::Invalid => return None,
    };
    Some(StepAction::Agent { agent, command })
}

fn argv_command(
    diagnostics: &mut Diagnostics<'_>,
    argv: &Spanned<Vec<Spanned<String>>>,
) -> Option<StepCommand> {
    let Some(program) = argv.get_ref().first() else {
        diagnostics.error(
            argv.span(),
            "`run` is empty: give the command as argv, like [\"/usr/local/bin/promote-replica\"]",
        );
        return None;
    };
    if !program.get_ref().starts_with('/') {
        diagnostics.error(
            program.span(),
            format!(
                "`run` starts with {}: the program must be an absolute path (agents run only \
                 the paths their policy lists, never a search of PATH)",
                echo::quoted(program.get_ref())
            ),
        );
        return None;
    }
    if let Some(nul) = argv.get_ref().iter().find(|a| a.get_ref().contains('\0')) {
        diagnostics.error(
            nul.span(),
            "`run`: an argument cannot contain a NUL character",
        );
        return None;
    }
    Some(StepCommand::Argv(
        argv.get_ref().iter().map(|a| a.get_ref().clone()).collect(),
    ))
}

/// `when`: "alert", a delay after the fault ("5s"), or { stage = "failover" }.
fn trigger(
    diagnostics: &mut Diagnostics<'_>,
    when: &Field<toml::Value>,
    span: &Range<usize>,
    cx: &Context<'_>,
) -> Option<StepTrigger> {
    const EXPECTED: &str = "\"alert\" (when the [detect] alert arrives), a delay after the \
                            fault such as \"5s\", or { stage = \"failover\" }";
    let written = match when {
        Field::Given(w) => w,
        Field::Invalid => return None,
        Field::Absent => {
            diagnostics.error(
                span.clone(),
                format!("a remediation step needs `when`: {EXPECTED}"),
            );
            return None;
        }
    };
    match written.get_ref() {
        toml::Value::String(s) if s == "alert" => {
            if !cx.detect {
                diagnostics.error(
                    written.span(),
                    "when = \"alert\" needs [detect]: the alert whose arrival starts the step",
                );
                return None;
            }
            Some(StepTrigger::Alert)
        }
        toml::Value::String(s) => {
            let text = Spanned::new(written.span(), s.clone());
            if s.parse::<Duration>().is_err() {
                diagnostics.error(
                    written.span(),
                    format!("`when` = {}: expected {EXPECTED}", echo::quoted(s)),
                );
                return None;
            }
            let delay = duration(diagnostics, "when", &text)?;
            if let Some(observe) = cx.observe.filter(|o| delay >= *o) {
                diagnostics.error(
                    written.span(),
                    format!(
                        "`when` = \"{delay}\" is not within the observe window ({observe}): the \
                         step would never run"
                    ),
                );
                return None;
            }
            if delay > MAX_OBSERVE {
                return None;
            }
            Some(StepTrigger::After(delay))
        }
        toml::Value::Table(t) if t.len() == 1 && t.contains_key("stage") => {
            let Some(stage) = t["stage"].as_str() else {
                diagnostics.error(written.span(), "`when.stage` must be a stage's name");
                return None;
            };
            if !cx.stages.iter().any(|s| s == stage) {
                let known = if cx.stages.is_empty() {
                    "the scenario has no [[stages]]".to_string()
                } else {
                    format!("stages: {}", cx.stages.join(", "))
                };
                diagnostics.error(
                    written.span(),
                    format!(
                        "`when.stage`: no stage is named {} ({known})",
                        echo::quoted(stage)
                    ),
                );
                return None;
            }
            Some(StepTrigger::Stage(stage.to_string()))
        }
        other => {
            diagnostics.error(
                written.span(),
                format!("`when` must be {EXPECTED}, not {}", other.type_str()),
            );
            None
        }
    }
}

/// One `[[remediation]]` table as written.
struct RawStep {
    name: Field<String>,
    agent: Field<String>,
    run: Field<Vec<Spanned<String>>>,
    shell: Field<String>,
    webhook: Field<String>,
    timeout: Field<String>,
    when: Field<toml::Value>,
}

impl RawStep {
    fn read(diagnostics: &mut Diagnostics<'_>, table: &DeTable<'_>) -> Self {
        let mut fields = Fields::new(table);
        let d = diagnostics;
        let raw = Self {
            name: fields.take(d, "name"),
            agent: fields.take(d, "agent"),
            run: fields.take(d, "run"),
            shell: fields.take(d, "shell"),
            webhook: fields.take(d, "webhook"),
            timeout: fields.take(d, "timeout"),
            when: fields.take(d, "when"),
        };
        fields.reject_unknown(d);
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{assert_only_error, errors, MINIMAL};
    use super::super::parse;
    use super::*;

    const DETECT: &str = "[detect]\nalerts = { alertname = \"WebDown\" }\n";

    fn with(steps: &str) -> String {
        format!("{MINIMAL}\n{DETECT}\n[[stages]]\nname = \"failover\"\nprobes = [\"port\"]\nrto = \"2s\"\n{steps}")
    }

    #[test]
    fn steps_parse_with_each_trigger_and_a_default_name() {
        let text = with(
            "[[remediation]]\nagent = \"db-2\"\nrun = [\"/usr/local/bin/promote-replica\", \"--force\"]\nwhen = \"alert\"\n\
             [[remediation]]\nname = \"flush\"\nagent = \"db-2\"\nshell = \"redis-cli flushall\"\ntimeout = \"5s\"\nwhen = \"2s\"\n\
             [[remediation]]\nwebhook = \"page-db-team\"\nwhen = { stage = \"failover\" }\n",
        );
        let s = parse("t.toml", &text).unwrap();
        assert_eq!(s.remediation.len(), 3);
        assert_eq!(s.remediation[0].name, "promote-replica");
        assert_eq!(s.remediation[0].timeout, DEFAULT_STEP_TIMEOUT);
        assert_eq!(s.remediation[0].when, StepTrigger::Alert);
        assert_eq!(
            s.remediation[0].action,
            StepAction::Agent {
                agent: "db-2".into(),
                command: StepCommand::Argv(vec![
                    "/usr/local/bin/promote-replica".into(),
                    "--force".into()
                ]),
            }
        );
        assert_eq!(
            s.remediation[1].when,
            StepTrigger::After(Duration::from_millis(2_000))
        );
        assert_eq!(
            s.remediation[1].action,
            StepAction::Agent {
                agent: "db-2".into(),
                command: StepCommand::Shell("redis-cli flushall".into()),
            }
        );
        assert_eq!(s.remediation[2].name, "page-db-team");
        assert_eq!(s.remediation[2].when, StepTrigger::Stage("failover".into()));
    }

    #[test]
    fn each_mistake_is_named_where_it_is() {
        let cases = [
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"promote\"]\nwhen = \"alert\"\n",
                "the program must be an absolute path",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = []\nwhen = \"alert\"\n",
                "`run` is empty",
            ),
            (
                "[[remediation]]\nrun = [\"/bin/true\"]\nwhen = \"alert\"\n",
                "needs `agent`",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nwhen = \"alert\"\n",
                "needs one of `run`",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nshell = \"true\"\nwhen = \"alert\"\n",
                "it sets `run` and `shell`; keep one",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nwebhook = \"x\"\nwhen = \"alert\"\n",
                "`agent` does not apply to a `webhook` step",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\n",
                "needs `when`",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nwhen = \"soon\"\n",
                "`when` = \"soon\": expected \"alert\"",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nwhen = { stage = \"restore\" }\n",
                "no stage is named \"restore\" (stages: failover)",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nwhen = \"10m\"\n",
                "is not within the observe window",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nwhen = 5\n",
                "`when` must be \"alert\"",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nwhen = \"alert\"\ntimeout = \"0s\"\n",
                "`timeout` must be more than 0",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nwhen = \"alert\"\n[[remediation]]\nagent = \"b\"\nrun = [\"/bin/true\"]\nwhen = \"1s\"\n",
                "two remediation steps are named \"true\"",
            ),
            (
                "[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nwhen = \"alert\"\nretries = 3\n",
                "unknown field `retries`",
            ),
        ];
        for (steps, expected) in cases {
            let found = errors(&with(steps));
            assert!(
                found.len() == 1 && found[0].2.contains(expected),
                "{steps}: expected one error containing {expected:?}, got {found:#?}"
            );
        }
    }

    #[test]
    fn errors_point_at_the_value() {
        let text = with("[[remediation]]\nagent = \"a\"\nrun = [\"promote\"]\nwhen = \"alert\"\n");
        let line = text.lines().position(|l| l.starts_with("run =")).unwrap() + 1;
        assert_only_error(&text, line, 8, "absolute path");
    }

    #[test]
    fn an_alert_trigger_needs_detect() {
        let text = format!(
            "{MINIMAL}\n[[remediation]]\nagent = \"a\"\nrun = [\"/bin/true\"]\nwhen = \"alert\"\n"
        );
        let line = text.lines().position(|l| l.starts_with("when =")).unwrap() + 1;
        assert_only_error(&text, line, 8, "when = \"alert\" needs [detect]");
    }
}
