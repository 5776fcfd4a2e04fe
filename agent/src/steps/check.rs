//! Whether a `RunStep` is well formed and what the host's `[policy.remediation]` says about it,
//! before anything runs: the typed step it becomes, or the refusal to report.

use std::time::Duration;

use gameday_proto::v1::{FailureKind, RunStep};

use super::policy::RemediationPolicy;

/// The shell a `shell` step runs under, as `/bin/sh -c LINE`.
pub const SHELL: &str = "/bin/sh";

/// What a step runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepCommand {
    /// A program (a listed absolute path) and its arguments, executed directly.
    Argv(Vec<String>),
    /// A command line for `/bin/sh -c`.
    Shell(String),
}

impl StepCommand {
    /// The program to execute and its arguments (after `argv[0]`).
    pub fn program_and_args(&self) -> (&str, Vec<&str>) {
        match self {
            StepCommand::Argv(argv) => (&argv[0], argv[1..].iter().map(String::as_str).collect()),
            StepCommand::Shell(line) => (SHELL, vec!["-c", line]),
        }
    }
}

/// A step the policy lets run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedStep {
    /// The controller's id for the step, which its reports carry.
    pub step_id: String,
    /// The run it belongs to.
    pub run_id: String,
    /// What it runs.
    pub command: StepCommand,
    /// When the agent ends its process group.
    pub timeout: Duration,
}

/// Why a step is not run (or could not be started), as reported to the controller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Reports are matched to steps by id.
    #[error("the step has no step_id")]
    NoStepId,
    /// Neither argv nor shell.
    #[error("the step has neither argv nor a shell command line: it must have exactly one")]
    NoCommand,
    /// Both argv and shell.
    #[error("the step has both argv and a shell command line: it must have exactly one")]
    BothCommands,
    /// A NUL byte cannot be passed to a program.
    #[error("argv[{index}] contains a NUL byte")]
    NulInArgv {
        /// The argument's position.
        index: usize,
    },
    /// A NUL byte cannot be passed to the shell.
    #[error("the shell command line contains a NUL byte")]
    NulInShell,
    /// The agent never looks programs up in `PATH`.
    #[error("argv[0] {program:?} is not an absolute path (the agent does no PATH lookup)")]
    RelativeProgram {
        /// `argv[0]` as sent.
        program: String,
    },
    /// A step without a timeout could run for ever.
    #[error(
        "timeout_ms is 0: a step needs a timeout (at most [policy.remediation] max_timeout = \
         {max})"
    )]
    NoTimeout {
        /// The policy's limit, to say what would be accepted.
        max: gameday_proto::Duration,
    },
    /// The policy lists no commands and allows no shell.
    #[error(
        "remediation steps are disabled on this host ([policy.remediation] commands is empty)"
    )]
    Disabled,
    /// `argv[0]` is not one of the listed commands.
    #[error("{program:?} is not in [policy.remediation] commands (allowed: {allowed})")]
    NotListed {
        /// `argv[0]` as sent.
        program: String,
        /// The listed commands, comma-separated.
        allowed: String,
    },
    /// A shell step where the policy allows none.
    #[error("shell steps are not allowed on this host ([policy.remediation] shell = false)")]
    ShellNotAllowed,
    /// The timeout asked for is above the policy's limit.
    #[error("timeout {timeout} is longer than [policy.remediation] max_timeout = {max}")]
    TimeoutTooLong {
        /// What the step asked for.
        timeout: gameday_proto::Duration,
        /// The policy's limit.
        max: gameday_proto::Duration,
    },
    /// As many steps as the policy allows are running already.
    #[error(
        "this host is already running as many steps as [policy.remediation] max_running = \
         {max} allows"
    )]
    TooManyRunning {
        /// The policy's limit.
        max: u32,
    },
    /// A step with this id is running: its reports would be confused with the new one's.
    #[error("step {step_id} is already running")]
    AlreadyRunning {
        /// The id.
        step_id: String,
    },
    /// The agent is stopping and starts nothing new.
    #[error("the agent is shutting down")]
    ShuttingDown,
    /// The kernel would not start the program (`ENOENT`, `EACCES`...).
    #[error("cannot start {program:?}: {errno}")]
    Spawn {
        /// The program executed (`/bin/sh` for a shell step).
        program: String,
        /// What the kernel said.
        errno: nix::errno::Errno,
    },
}

impl StepError {
    /// How the controller should read the failure.
    pub fn kind(&self) -> FailureKind {
        use StepError::*;
        match self {
            NoStepId
            | NoCommand
            | BothCommands
            | NulInArgv { .. }
            | NulInShell
            | RelativeProgram { .. }
            | NoTimeout { .. }
            | AlreadyRunning { .. } => FailureKind::Invalid,
            Disabled
            | NotListed { .. }
            | ShellNotAllowed
            | TimeoutTooLong { .. }
            | TooManyRunning { .. } => FailureKind::Policy,
            ShuttingDown | Spawn { .. } => FailureKind::System,
        }
    }
}

/// Checks `step` against `policy`: malformed requests first, then what the policy allows. The
/// number of steps running is the runner's to check; this is the whole answer to `check_only`.
pub fn check(step: &RunStep, policy: &RemediationPolicy) -> Result<CheckedStep, StepError> {
    if step.step_id.is_empty() {
        return Err(StepError::NoStepId);
    }
    let command = match (step.argv.is_empty(), step.shell.is_empty()) {
        (true, true) => return Err(StepError::NoCommand),
        (false, false) => return Err(StepError::BothCommands),
        (false, true) => check_argv(&step.argv, policy)?,
        (true, false) => check_shell(&step.shell, policy)?,
    };
    let max = policy.max_timeout;
    if step.timeout_ms == 0 {
        return Err(StepError::NoTimeout { max });
    }
    let timeout = Duration::from_millis(step.timeout_ms);
    if timeout > max.get() {
        return Err(StepError::TimeoutTooLong {
            timeout: timeout.into(),
            max,
        });
    }
    Ok(CheckedStep {
        step_id: step.step_id.clone(),
        run_id: step.run_id.clone(),
        command,
        timeout,
    })
}

fn check_argv(argv: &[String], policy: &RemediationPolicy) -> Result<StepCommand, StepError> {
    if let Some(index) = argv.iter().position(|a| a.contains('\0')) {
        return Err(StepError::NulInArgv { index });
    }
    let program = &argv[0];
    if !program.starts_with('/') {
        return Err(StepError::RelativeProgram {
            program: program.clone(),
        });
    }
    if policy.commands.is_empty() {
        return Err(StepError::Disabled);
    }
    if !policy.lists(program) {
        return Err(StepError::NotListed {
            program: program.clone(),
            allowed: policy.allowed().to_string(),
        });
    }
    Ok(StepCommand::Argv(argv.to_vec()))
}

fn check_shell(line: &str, policy: &RemediationPolicy) -> Result<StepCommand, StepError> {
    if line.contains('\0') {
        return Err(StepError::NulInShell);
    }
    if !policy.shell {
        return Err(StepError::ShellNotAllowed);
    }
    Ok(StepCommand::Shell(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> RemediationPolicy {
        let p: RemediationPolicy = toml::from_str(text).unwrap();
        p.validate().unwrap();
        p
    }

    fn promote() -> RemediationPolicy {
        policy(r#"commands = ["/usr/local/bin/promote-replica"]"#)
    }

    fn argv(args: &[&str], timeout_ms: u64) -> RunStep {
        RunStep {
            step_id: "s1".into(),
            run_id: "r1".into(),
            argv: args.iter().map(ToString::to_string).collect(),
            timeout_ms,
            ..RunStep::default()
        }
    }

    fn shell(line: &str) -> RunStep {
        RunStep {
            step_id: "s1".into(),
            run_id: "r1".into(),
            shell: line.into(),
            timeout_ms: 1_000,
            ..RunStep::default()
        }
    }

    /// The refusal's message and kind.
    fn refused(step: &RunStep, policy: &RemediationPolicy) -> (String, FailureKind) {
        let e = check(step, policy).unwrap_err();
        (e.to_string(), e.kind())
    }

    #[test]
    fn accepts_a_listed_program_with_its_arguments() {
        let step = argv(&["/usr/local/bin/promote-replica", "--to", "db-2"], 30_000);
        let checked = check(&step, &promote()).unwrap();
        assert_eq!(checked.step_id, "s1");
        assert_eq!(checked.run_id, "r1");
        assert_eq!(checked.timeout, Duration::from_secs(30));
        assert_eq!(
            checked.command.program_and_args(),
            ("/usr/local/bin/promote-replica", vec!["--to", "db-2"])
        );
    }

    #[test]
    fn refuses_programs_the_policy_does_not_list() {
        assert_eq!(
            refused(&argv(&["/usr/bin/rm", "-rf", "/"], 1_000), &promote()),
            (
                "\"/usr/bin/rm\" is not in [policy.remediation] commands (allowed: \
                 /usr/local/bin/promote-replica)"
                    .into(),
                FailureKind::Policy
            )
        );
        // Exact paths: no normalisation, no PATH, no globbing.
        for program in [
            "/usr/local/bin/../bin/promote-replica",
            "/usr/local/bin//promote-replica",
        ] {
            let (message, kind) = refused(&argv(&[program], 1_000), &promote());
            assert_eq!(kind, FailureKind::Policy, "{program}");
            assert!(message.contains("is not in [policy.remediation] commands"));
        }
        assert_eq!(
            refused(&argv(&["promote-replica"], 1_000), &promote()),
            (
                "argv[0] \"promote-replica\" is not an absolute path (the agent does no PATH \
                 lookup)"
                    .into(),
                FailureKind::Invalid
            )
        );
    }

    #[test]
    fn the_default_policy_runs_nothing() {
        let default = RemediationPolicy::default();
        assert_eq!(
            refused(&argv(&["/bin/true"], 1_000), &default),
            (
                "remediation steps are disabled on this host ([policy.remediation] commands is \
                 empty)"
                    .into(),
                FailureKind::Policy
            )
        );
        assert_eq!(
            refused(&shell("true"), &default),
            (
                "shell steps are not allowed on this host ([policy.remediation] shell = false)"
                    .into(),
                FailureKind::Policy
            )
        );
    }

    #[test]
    fn shell_steps_need_the_policy_to_allow_a_shell() {
        assert_eq!(refused(&shell("true"), &promote()).1, FailureKind::Policy);
        let allowed = policy("shell = true");
        let checked = check(&shell("echo $((6*7))"), &allowed).unwrap();
        assert_eq!(
            checked.command.program_and_args(),
            ("/bin/sh", vec!["-c", "echo $((6*7))"])
        );
    }

    #[test]
    fn timeouts_are_required_and_bounded_by_the_policy() {
        let p = policy(
            r#"commands = ["/usr/local/bin/promote-replica"]
               max_timeout = "5m""#,
        );
        assert_eq!(
            refused(&argv(&["/usr/local/bin/promote-replica"], 0), &p),
            (
                "timeout_ms is 0: a step needs a timeout (at most [policy.remediation] \
                 max_timeout = 5m)"
                    .into(),
                FailureKind::Invalid
            )
        );
        assert_eq!(
            refused(&argv(&["/usr/local/bin/promote-replica"], 300_001), &p),
            (
                "timeout 5m 1ms is longer than [policy.remediation] max_timeout = 5m".into(),
                FailureKind::Policy
            )
        );
        assert!(check(&argv(&["/usr/local/bin/promote-replica"], 300_000), &p).is_ok());
        assert!(check(&argv(&["/usr/local/bin/promote-replica"], 1), &p).is_ok());
    }

    #[test]
    fn malformed_steps_are_invalid() {
        let p = policy(
            r#"commands = ["/usr/local/bin/promote-replica"]
               shell = true"#,
        );
        let mut both = argv(&["/usr/local/bin/promote-replica"], 1_000);
        both.shell = "true".into();
        let mut no_id = argv(&["/usr/local/bin/promote-replica"], 1_000);
        no_id.step_id.clear();
        for (step, says) in [
            (
                argv(&[], 1_000),
                "the step has neither argv nor a shell command line: it must have exactly one",
            ),
            (
                both,
                "the step has both argv and a shell command line: it must have exactly one",
            ),
            (no_id, "the step has no step_id"),
            (
                argv(&["/usr/local/bin/promote-replica", "a\0b"], 1_000),
                "argv[1] contains a NUL byte",
            ),
            (
                shell("true\0"),
                "the shell command line contains a NUL byte",
            ),
        ] {
            assert_eq!(refused(&step, &p), (says.to_string(), FailureKind::Invalid));
        }
    }

    #[test]
    fn runtime_refusals_say_what_happened() {
        assert_eq!(
            StepError::TooManyRunning { max: 4 }.to_string(),
            "this host is already running as many steps as [policy.remediation] \
             max_running = 4 allows"
        );
        assert_eq!(
            StepError::TooManyRunning { max: 4 }.kind(),
            FailureKind::Policy
        );
        assert_eq!(
            StepError::AlreadyRunning {
                step_id: "s1".into()
            }
            .to_string(),
            "step s1 is already running"
        );
        let spawn = StepError::Spawn {
            program: "/usr/local/bin/gone".into(),
            errno: nix::errno::Errno::ENOENT,
        };
        assert_eq!(
            spawn.to_string(),
            "cannot start \"/usr/local/bin/gone\": ENOENT: No such file or directory"
        );
        assert_eq!(spawn.kind(), FailureKind::System);
        assert_eq!(StepError::ShuttingDown.kind(), FailureKind::System);
    }
}
