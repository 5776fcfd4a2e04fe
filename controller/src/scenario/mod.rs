//! Scenario files: parsing and whole-file validation with file, line and column in every error.
//!
//! A scenario is read in two steps. toml parses the text into its spanned tree; then each part
//! (the top level, `[targets]`, every `[[faults]]` and `[[probes]]` table) is deserialized on its
//! own and checked, so one pass reports every problem it can find, each at its own place. Nothing
//! runs unless the whole file is valid.

mod detect;
mod echo;
mod error;
mod fault;
mod fields;
#[cfg(test)]
pub(crate) mod fixture;
pub mod limits;
mod names;
mod probe;
mod raw;
mod remediation;
mod settings;
mod stages;
mod targets;
mod tree;
mod validate;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use gameday_proto::{Duration, Fault};
use serde::{Deserialize, Serialize};

pub use error::{ScenarioError, ScenarioErrors};

use error::Diagnostics;

/// A validated scenario: what to break, where, how to watch the service, and how fast it must
/// come back.
///
/// Build one with [`parse`] or [`load`], which check everything. `Serialize` and `Deserialize`
/// are there for reports and run history, which embed the scenario; they do not validate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Short name, used in reports and history.
    pub name: String,
    /// What the scenario does and why; empty when the file has none.
    pub description: String,
    /// Recovery time objective: the longest outage that still passes.
    pub rto: Duration,
    /// How many runs to make (each graded on its own, then together); at least 1.
    pub repeat: u32,
    /// Fraction of runs that must PASS for the scenario to pass, in (0, 1].
    pub min_pass_rate: f64,
    /// How long every probe must be healthy before the fault is injected; more than zero.
    pub steady_state: Duration,
    /// How long to watch for recovery after injection; at least the RTO.
    pub observe: Duration,
    /// Pause between repeats.
    pub cooldown: Duration,
    /// What the scenario expects the fault to do to the service.
    pub expect: Expectation,
    /// When holding faults are reverted.
    #[serde(default)]
    pub revert: RevertPolicy,
    /// Whether the service must heal by itself, or coming back after the revert is what is
    /// measured.
    #[serde(default)]
    pub recovery: RecoveryMode,
    /// Which agents the faults are applied on.
    pub targets: Targets,
    /// The faults injected on every target; at least one, each valid.
    pub faults: Vec<Fault>,
    /// The probes watching the service; at least one, with unique names.
    pub probes: Vec<ProbeSpec>,
    /// The team's alerts that should notice the fault (`[detect]`), for time to detect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detect: Option<Detect>,
    /// Recovery in steps (`[[stages]]`), each graded against its own RTO; full restore (every
    /// probe, against `rto`) is always graded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Runbook steps run during the run (`[[remediation]]`), each on its trigger.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remediation: Vec<RemediationStep>,
}

/// `[[remediation]]`: a runbook step gameday runs during the run, as the team's automation
/// would; its start is the remediation start, its outcome is on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationStep {
    /// Its name, unique among the steps (the program's file name or the runbook's when not
    /// written).
    pub name: String,
    /// What it does.
    pub action: StepAction,
    /// How long it may run: the agent ends it then; a webhook call gives up then.
    pub timeout: Duration,
    /// What starts it.
    pub when: StepTrigger,
}

/// What a remediation step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    /// A command on an agent's host, under that agent's policy.
    Agent {
        /// The agent.
        agent: String,
        /// The command.
        command: StepCommand,
    },
    /// A POST to a runbook webhook named in the controller's config (`[runbooks.NAME]`).
    Webhook {
        /// The runbook's name.
        runbook: String,
    },
}

impl StepAction {
    /// The name a step gets when the scenario gives none.
    pub fn default_name(&self) -> String {
        match self {
            StepAction::Agent {
                command: StepCommand::Argv(argv),
                ..
            } => argv
                .first()
                .and_then(|p| p.rsplit('/').find(|s| !s.is_empty()))
                .unwrap_or("step")
                .to_string(),
            StepAction::Agent {
                command: StepCommand::Shell(_),
                ..
            } => "shell".to_string(),
            StepAction::Webhook { runbook } => runbook.clone(),
        }
    }

    /// Where it runs, for reports: "agent db-2" or "runbook page-db".
    pub fn place(&self) -> String {
        match self {
            StepAction::Agent { agent, .. } => format!("agent {agent}"),
            StepAction::Webhook { runbook } => format!("runbook {runbook}"),
        }
    }
}

/// A step's command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepCommand {
    /// Run as argv, never through a shell.
    Argv(Vec<String>),
    /// A command line for `/bin/sh -c`, where the agent's policy allows a shell.
    Shell(String),
}

impl std::fmt::Display for StepCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepCommand::Argv(argv) => f.write_str(&argv.join(" ")),
            StepCommand::Shell(line) => write!(f, "sh -c {line:?}"),
        }
    }
}

/// What starts a remediation step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepTrigger {
    /// The `[detect]` alert arriving.
    Alert,
    /// This long after the fault took effect.
    After(Duration),
    /// The stage of that name reached (all its probes recovered).
    Stage(String),
}

impl std::fmt::Display for StepTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepTrigger::Alert => f.write_str("when the alert arrives"),
            StepTrigger::After(d) => write!(f, "+{d} after the fault"),
            StepTrigger::Stage(s) => write!(f, "when stage {s} is reached"),
        }
    }
}

/// `[[stages]]`: a step of recovery, reached when all its probes have recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Its name (`failover`), unique among the stages.
    pub name: String,
    /// The probes whose recovery reaches it.
    pub probes: Vec<String>,
    /// How soon after the fault it must be reached.
    pub rto: Duration,
}

/// `[detect]`: which alert should notice the fault, and how soon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detect {
    /// The labels the alert carries (every one, with its value).
    pub alerts: crate::alerts::LabelSelector,
    /// How long after the injection the alert may start and arrive; the observe window when
    /// not given.
    pub within: Duration,
    /// Whether a fault no alert noticed fails the run.
    pub expect_alert: bool,
}

impl Scenario {
    /// What is valid but probably not what the author meant, one sentence each; `gameday
    /// validate` prints them as warnings.
    ///
    /// A holding fault whose `duration` is not longer than the RTO is reverted before the RTO
    /// is up: a service that needs nearly the whole RTO to heal itself never gets the chance,
    /// and one that only comes back with the revert is graded FAIL (see [`RecoveryMode`]).
    /// Unless recovery after the revert is what the scenario tests, that is worth a word.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.hold_warnings();
        // Alertmanager holds a new group's first notification for `group_wait` (30 s unless
        // configured): a shorter window calls a noticed fault unnoticed.
        if let Some(d) = self
            .detect
            .as_ref()
            .filter(|d| d.within.get() < ALERTMANAGER_GROUP_WAIT)
        {
            warnings.push(format!(
                "[detect] within = \"{}\" is shorter than Alertmanager's default group_wait \
                 (30s): unless its route sets a shorter group_wait, the alert arrives too late \
                 to count",
                d.within
            ));
        }
        warnings
    }

    fn hold_warnings(&self) -> Vec<String> {
        if self.recovery == RecoveryMode::AfterRevert {
            return Vec::new();
        }
        self.faults
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let held = f.duration()?;
                (held <= self.rto).then(|| {
                    format!(
                        "fault {} ({}) holds for {held}, not longer than the RTO ({}): it is \
                         reverted before the RTO is up, so the run cannot show the service \
                         healing by itself, and a recovery that only comes after the revert is \
                         graded FAIL; hold it longer than the RTO, or set \
                         recovery = \"after_revert\" if coming back after the revert is what \
                         this scenario tests",
                        i + 1,
                        f.kind(),
                        self.rto
                    )
                })
            })
            .collect()
    }
}

/// Alertmanager's default `group_wait`.
const ALERTMANAGER_GROUP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A scenario as it was read: the file it came from, its text, and what the text says. Runs
/// carry all three: reports name the file, the history keeps the text and its hash.
#[derive(Clone, Debug)]
pub struct ScenarioFile {
    /// Where it came from: a path, or the name an operator gave it.
    pub file: String,
    /// Its text, exactly as read.
    pub source: String,
    /// What it says, validated.
    pub scenario: Scenario,
}

impl ScenarioFile {
    /// Parses and validates `source`, read from `file`.
    pub fn parse(file: &str, source: String) -> Result<ScenarioFile, ScenarioErrors> {
        let scenario = parse(file, &source)?;
        Ok(ScenarioFile {
            file: file.to_string(),
            source,
            scenario,
        })
    }
}

/// What the scenario expects the fault to do (`expect = "recovery" | "no_impact"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// The service goes down and must come back within the RTO.
    #[default]
    Recovery,
    /// The service must not notice the fault at all (redundancy absorbs it).
    NoImpact,
}

impl Expectation {
    /// The name scenarios, reports and the history use.
    pub fn as_str(self) -> &'static str {
        match self {
            Expectation::Recovery => "recovery",
            Expectation::NoImpact => "no_impact",
        }
    }
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Expectation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "recovery" => Ok(Expectation::Recovery),
            "no_impact" => Ok(Expectation::NoImpact),
            _ => Err(format!(
                "unknown expectation {s:?} (expected recovery or no_impact)"
            )),
        }
    }
}

/// When holding faults are reverted (`revert = "after_duration" | "on_recovery" | "manual"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevertPolicy {
    /// At the end of the fault's `duration` (or of the observation window).
    #[default]
    AfterDuration,
    /// As soon as every impacted probe has recovered, or at the end of the duration if that
    /// comes first: for faults a redundant system is expected to absorb while they hold.
    OnRecovery,
    /// When an operator says so (`gameday revert RUN`), or at the end of the observation
    /// window: the fault holds while people work on it. A fault's own `duration` and the
    /// agent's lease still bound it.
    Manual,
}

/// What counts as recovery (`recovery = "self" | "after_revert"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryMode {
    /// The service must come back while the fault still holds: a service that is only back
    /// once the fault was reverted has not healed, and the run FAILs whatever the RTO says.
    #[default]
    #[serde(rename = "self")]
    SelfHealing,
    /// Coming back after the revert is the thing under test (how fast does the service catch
    /// up once a dependency returns?): the run PASSes when the service is back within the RTO
    /// of the injection, before or after the revert.
    AfterRevert,
}

impl std::fmt::Display for RecoveryMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecoveryMode::SelfHealing => "self",
            RecoveryMode::AfterRevert => "after_revert",
        })
    }
}

/// The agents a scenario runs on: those named, plus those carrying all the labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// Agents by name (unique, non-empty).
    pub agents: Vec<String>,
    /// Labels an agent must all carry to be a target.
    pub labels: BTreeMap<String, String>,
    /// Blast-radius limit: the most agents one run may touch; at least 1 and at least the
    /// number of agents named.
    pub max_targets: u32,
}

/// One synthetic probe watching the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    /// Name, unique within the scenario.
    pub name: String,
    /// Time between checks; at least 10ms.
    pub interval: Duration,
    /// How long one check may take before it counts as failed; more than zero.
    pub timeout: Duration,
    /// Consecutive successes that mark the service as recovered; at least 1.
    pub recovered_after: u32,
    /// Most checks in flight at once; `None`: enough for one check per interval while earlier
    /// ones hang until their timeout (`probe::default_max_in_flight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// Checks per sample, each over its own connection; the sample is good only if all are.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub spread: u32,
    /// Seeds the probe's phase and period jitter; `None`: a fresh seed every run (shown in the
    /// report's timeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// What the probe signals instead of the service's health (`signals = "remediation"`): it
    /// takes no part in steady state or grading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<ProbeSignal>,
    /// What is checked.
    #[serde(flatten)]
    pub check: ProbeCheck,
}

/// What a signal probe marks on the run's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeSignal {
    /// Its first good answer after the fault, following a failed one, is remediation start
    /// ("the standby's role endpoint says primary").
    Remediation,
}

impl Scenario {
    /// `probes` without the signal probes: what steady state and grading look at.
    pub fn health_only(
        &self,
        mut probes: Vec<crate::timeline::ProbeTimeline>,
    ) -> Vec<crate::timeline::ProbeTimeline> {
        probes.retain(|p| !self.signal_probes().any(|s| s == p.name));
        probes
    }

    /// The names of the probes that signal remediation.
    pub fn signal_probes(&self) -> impl Iterator<Item = &str> {
        self.probes
            .iter()
            .filter(|p| p.signals.is_some())
            .map(|p| p.name.as_str())
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// What a probe checks (`kind = "tcp" | "http" | "dns"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeCheck {
    /// A TCP connect to `host:port`.
    Tcp {
        /// `host:port`, `ip:port` or `[ipv6]:port`.
        address: String,
    },
    /// An HTTP GET whose status (and optionally body) must match.
    Http {
        /// `http://` URL (https is not supported yet).
        url: String,
        /// Expected status code; 200 unless set.
        expect_status: u16,
        /// Text the body must contain, when set.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_body: Option<String>,
    },
    /// One UDP DNS query whose answer must hold records of the type (and the addresses).
    Dns {
        /// The DNS server asked: an IP address and port (53 unless written).
        server: SocketAddr,
        /// The name looked up, as written (without a trailing dot it is still asked as is:
        /// no search domains are appended).
        query: String,
        /// `A` (default) or `AAAA`.
        #[serde(default)]
        record: DnsRecord,
        /// Addresses the answer must all contain; empty: any answer with a record of the type.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        expect: Vec<IpAddr>,
    },
}

/// The record type a `dns` probe asks for (`record = "A" | "AAAA"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsRecord {
    /// IPv4 addresses.
    #[default]
    A,
    /// IPv6 addresses.
    #[serde(rename = "AAAA")]
    Aaaa,
}

impl DnsRecord {
    /// Whether `ip` is of the family this record type holds.
    pub fn holds(self, ip: &IpAddr) -> bool {
        matches!(
            (self, ip),
            (DnsRecord::A, IpAddr::V4(_)) | (DnsRecord::Aaaa, IpAddr::V6(_))
        )
    }
}

impl std::fmt::Display for DnsRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DnsRecord::A => "A",
            DnsRecord::Aaaa => "AAAA",
        })
    }
}

/// Parses and validates the scenario in `text`; `file_name` is only used in the errors.
///
/// Reports every problem found, in file order. A TOML syntax error stops the parse, so it is
/// reported alone.
pub fn parse(file_name: &str, text: &str) -> Result<Scenario, ScenarioErrors> {
    let mut diagnostics = Diagnostics::new(file_name, text);
    let scenario = validate::scenario(&mut diagnostics, text);
    match scenario {
        Some(scenario) if diagnostics.is_empty() => Ok(scenario),
        _ => {
            if diagnostics.is_empty() {
                // Every step that gives up reports why; this only guards that promise.
                diagnostics.error(0..0, "the scenario is incomplete");
            }
            Err(diagnostics.into_errors())
        }
    }
}

/// Reads the scenario file at `path` and validates it with [`parse`].
///
/// A file that cannot be read is reported as an error at line 1, column 1 of that file; bytes
/// that are not UTF-8 are reported where they are.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let file_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        let mut diagnostics = Diagnostics::new(&file_name, "");
        diagnostics.error(0..0, format!("cannot read the scenario: {e}"));
        diagnostics.into_errors()
    })?;
    if bytes.len() > crate::limits::MAX_SCENARIO_BYTES {
        let mut diagnostics = Diagnostics::new(&file_name, "");
        diagnostics.error(0..0, crate::limits::oversize(bytes.len()));
        return Err(diagnostics.into_errors());
    }
    match String::from_utf8(bytes) {
        Ok(text) => parse(&file_name, &text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let mut diagnostics = Diagnostics::new(&file_name, &text);
            diagnostics.error(valid..valid, "the file is not valid UTF-8 text");
            Err(diagnostics.into_errors())
        }
    }
}

#[cfg(test)]
mod tests {
    use gameday_proto::fault::Count;
    use gameday_proto::{KillSignal, ProcessKill, ProcessMatch, ProcessSelector};

    use super::fixture::{assert_error, errors, MINIMAL, VALID};
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_example_parses_to_the_expected_scenario() {
        let expected = Scenario {
            name: "demo".into(),
            description: "Kill the demo service; its restart loop brings it back.".into(),
            rto: ms(2_000),
            repeat: 3,
            min_pass_rate: 1.0,
            steady_state: ms(1_000),
            observe: ms(10_000),
            cooldown: ms(0),
            expect: Expectation::Recovery,
            revert: RevertPolicy::AfterDuration,
            recovery: RecoveryMode::SelfHealing,
            targets: Targets {
                agents: vec!["local".into()],
                labels: BTreeMap::new(),
                max_targets: 1,
            },
            faults: vec![Fault::ProcessKill(ProcessKill {
                signal: KillSignal::Kill,
                selector: ProcessSelector {
                    target: Some(ProcessMatch::PidFile("/tmp/x.pid".into())),
                    place: None,
                    netns: None,
                    pidns: None,
                },
                count: Count::All,
            })],
            probes: vec![
                ProbeSpec {
                    name: "http".into(),
                    interval: ms(10),
                    timeout: ms(200),
                    recovered_after: 3,
                    max_in_flight: None,
                    spread: 1,
                    seed: None,
                    signals: None,
                    check: ProbeCheck::Http {
                        url: "http://127.0.0.1:18080/".into(),
                        expect_status: 200,
                        expect_body: Some("ok".into()),
                    },
                },
                ProbeSpec {
                    name: "port".into(),
                    interval: ms(100),
                    timeout: ms(1_000),
                    recovered_after: 3,
                    max_in_flight: None,
                    spread: 1,
                    seed: None,
                    signals: None,
                    check: ProbeCheck::Tcp {
                        address: "127.0.0.1:18080".into(),
                    },
                },
            ],
            detect: None,
            stages: vec![],
            remediation: vec![],
        };
        assert_eq!(parse("demo.toml", VALID), Ok(expected));
    }

    #[test]
    fn absent_settings_take_their_defaults() {
        let scenario = parse("min.toml", MINIMAL).expect("valid");
        assert_eq!(scenario.description, "");
        assert_eq!(scenario.repeat, 1);
        assert_eq!(scenario.min_pass_rate, 1.0);
        assert_eq!(scenario.steady_state, ms(2_000));
        assert_eq!(scenario.observe, ms(30_000));
        assert_eq!(scenario.cooldown, ms(0));
        assert_eq!(scenario.expect, Expectation::Recovery);
        assert_eq!(scenario.targets.agents, Vec::<String>::new());
        assert_eq!(
            scenario.targets.labels.get("role").map(String::as_str),
            Some("web")
        );
        assert_eq!(scenario.targets.max_targets, 1);
        let probe = &scenario.probes[0];
        assert_eq!(
            (probe.interval, probe.timeout, probe.recovered_after),
            (ms(100), ms(1_000), 3)
        );
        let http = MINIMAL.replace(
            "kind = \"tcp\"\naddress = \"127.0.0.1:80\"",
            "kind = \"http\"\nurl = \"http://web/health\"",
        );
        let scenario = parse("min.toml", &http).expect("valid");
        assert_eq!(
            scenario.probes[0].check,
            ProbeCheck::Http {
                url: "http://web/health".into(),
                expect_status: 200,
                expect_body: None,
            }
        );
    }

    #[test]
    fn no_impact_expectation_and_every_setting_parse() {
        let text = MINIMAL.replace(
            "rto = \"5s\"",
            "rto = \"5s\"\nexpect = \"no_impact\"\nmin_pass_rate = 0.8\ncooldown = \"1m 30s\"\nrepeat = 10",
        );
        let scenario = parse("x.toml", &text).expect("valid");
        assert_eq!(scenario.expect, Expectation::NoImpact);
        assert_eq!(scenario.min_pass_rate, 0.8);
        assert_eq!(scenario.cooldown, ms(90_000));
        assert_eq!(scenario.repeat, 10);
    }

    #[test]
    fn a_holding_fault_not_longer_than_the_rto_is_warned_about() {
        let fill = MINIMAL.replace(
            "kind = \"process_kill\"\nname = \"nginx\"",
            "kind = \"process_pause\"\nname = \"nginx\"\nduration = \"3s\"",
        );
        let scenario = parse("x.toml", &fill).expect("valid");
        let warnings = scenario.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .starts_with("fault 1 (process_pause) holds for 3s, not longer than the RTO (5s)"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[0].contains("recovery = \"after_revert\""),
            "{}",
            warnings[0]
        );
        // Equal is not longer.
        let equal = fill.replace("duration = \"3s\"", "duration = \"5s\"");
        assert_eq!(parse("x.toml", &equal).unwrap().warnings().len(), 1);
        // Longer than the RTO, held for the whole window, or an instant fault: nothing to say.
        let longer = fill.replace("duration = \"3s\"", "duration = \"5001ms\"");
        assert!(parse("x.toml", &longer).unwrap().warnings().is_empty());
        let window = fill.replace("duration = \"3s\"\n", "");
        assert!(parse("x.toml", &window).unwrap().warnings().is_empty());
        assert!(parse("x.toml", MINIMAL).unwrap().warnings().is_empty());
        // Recovery after the revert is what the scenario tests: a short hold is the point.
        let after = fill.replace("rto = \"5s\"", "rto = \"5s\"\nrecovery = \"after_revert\"");
        assert!(parse("x.toml", &after).unwrap().warnings().is_empty());
    }

    #[test]
    fn reports_round_trip_through_json() {
        let scenario = parse("demo.toml", VALID).expect("valid");
        let json = serde_json::to_value(&scenario).expect("serializes");
        assert_eq!(json["expect"], "recovery");
        assert_eq!(json["rto"], "2s");
        assert_eq!(json["probes"][0]["kind"], "http");
        assert_eq!(json["probes"][0]["url"], "http://127.0.0.1:18080/");
        assert_eq!(json["probes"][1]["address"], "127.0.0.1:18080");
        assert_eq!(json["faults"][0]["kind"], "process_kill");
        let back: Scenario = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, scenario);
    }

    #[test]
    fn a_syntax_error_is_reported_alone_at_its_place() {
        let found = errors("name = \"demo\"\nrto = \"2s\nrepeat = 1\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!((found[0].0, found[0].1), (2, 10), "{found:#?}");
        assert!(found[0].2.contains("invalid basic string"), "{found:#?}");
        let found = errors("name = \"demo\"\nname = \"again\"\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_error(&found, 2, 1, "duplicate key `name`");
        let found = errors("[targets]\nagents = []\n[targets]\n");
        assert_error(&found, 3, 2, "duplicate key `targets`");
    }

    #[test]
    fn collects_errors_from_every_part_in_file_order() {
        let text = r#"name = "many"
rto = "soon"
repeat = 0

[targets]

[[faults]]
kind = "process_kill"
signal = "SIGSTOP"
name = "nginx"

[[faults]]
kind = "cpu_stress"

[[probes]]
name = "a"
kind = "tcp"
address = "localhost"

[[probes]]
name = "a"
kind = "http"
url = "https://example.test/"
interval = "1ms"
"#;
        let found = errors(text);
        let at: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(
            at,
            vec![
                (2, 7),
                (3, 10),
                (5, 1),
                (9, 10),
                (13, 8),
                (18, 11),
                (23, 7),
                (24, 12)
            ],
            "{found:#?}"
        );
        assert_error(&found, 2, 7, "`rto`: invalid duration \"soon\"");
        assert_error(&found, 3, 10, "`repeat` must be at least 1, got 0");
        assert_error(&found, 5, 1, "empty targets");
        assert_error(&found, 9, 10, "unknown signal \"SIGSTOP\"");
        assert_error(
            &found,
            13,
            8,
            "unknown fault kind \"cpu_stress\" (expected one of: process_kill, process_pause, network_partition, disk_fill, dns_poison)",
        );
        assert_error(&found, 18, 11, "has no port");
        assert_error(&found, 23, 7, "https probes are not supported yet");
        assert_error(&found, 24, 12, "`interval` must be at least 10ms");
    }

    #[test]
    fn columns_count_characters_after_multi_byte_text() {
        // "rôle", "wéb" and "→" take more bytes than columns; the error is at `1`.
        let text = MINIMAL.replace(
            "labels = { role = \"web\" }",
            "labels = { \"rôle\" = \"wéb→\", zone = 1 }",
        );
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        // `labels = { "rôle" = "wéb→", zone = ` is 35 characters (and 39 bytes).
        assert_error(
            &found,
            5,
            36,
            "`labels.zone`: invalid type: integer `1`, expected a string",
        );
    }

    #[test]
    fn errors_display_as_file_line_column_message() {
        let Err(errors) = parse("game/day.toml", "name = \"x\"\nrto = \"1s\"\n") else {
            panic!("incomplete scenario parsed");
        };
        let text = errors.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("game/day.toml:1:1: missing [targets]"),
            "{text}"
        );
        assert!(
            lines.iter().all(|l| l.starts_with("game/day.toml:1:1: ")),
            "{text}"
        );
    }

    #[test]
    fn forty_thousand_duplicate_probe_names_are_counted_and_the_first_shown() {
        // Once quadratic (every error rescanned the file for its line): 40,000 took minutes.
        let mut text = MINIMAL.to_string();
        let probe = "[[probes]]\nname = \"port\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n";
        text.push_str(&probe.repeat(39_999));
        let errors = parse("dup.toml", &text).expect_err("duplicates");
        assert_eq!(errors.total(), 39_999);
        assert_eq!(errors.errors().len(), limits::MAX_REPORTED_ERRORS);
        // The original probe's name is on line 12; each copy takes 4 lines after line 14.
        for (i, error) in errors.errors().iter().enumerate() {
            assert_eq!((error.line, error.column), (16 + 4 * i, 8), "{error}");
            assert_eq!(
                error.message,
                "duplicate probe name \"port\" (first used on line 12)"
            );
        }
        assert!(errors.to_string().ends_with("\n… and 39899 more errors"));
    }

    #[test]
    fn thirty_thousand_errors_on_one_line_are_placed_by_column() {
        let agents = vec!["\"\""; 30_000].join(", ");
        let text = MINIMAL.replace(
            "labels = { role = \"web\" }",
            &format!("agents = [{agents}]\nmax_targets = 1"),
        );
        let errors = parse("line.toml", &text).expect_err("empty names");
        assert_eq!(errors.total(), 30_000);
        for (i, error) in errors.errors().iter().enumerate() {
            // `agents = [` is 10 characters; each `"", ` is 4.
            assert_eq!((error.line, error.column), (5, 11 + 4 * i), "{error}");
        }
    }

    #[test]
    fn load_reads_a_file_and_names_it_in_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = dir.path().join("good.toml");
        std::fs::write(&good, VALID).expect("write");
        assert_eq!(load(&good).expect("valid").name, "demo");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, VALID.replace("repeat = 3", "repeat = 0")).expect("write");
        let errors = load(&bad).expect_err("invalid");
        assert_eq!(errors.errors().len(), 1);
        assert_eq!(errors.errors()[0].file, bad.display().to_string());
        assert_eq!(
            (errors.errors()[0].line, errors.errors()[0].column),
            (4, 10)
        );
    }

    #[test]
    fn load_reports_unreadable_and_non_utf8_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.toml");
        let errors = load(&missing).expect_err("no file");
        let error = &errors.errors()[0];
        assert_eq!((error.line, error.column), (1, 1));
        assert_eq!(error.file, missing.display().to_string());
        assert!(
            error.message.contains("cannot read the scenario"),
            "{error}"
        );

        let latin1 = dir.path().join("latin1.toml");
        std::fs::write(&latin1, b"name = \"x\"\ndescription = \"caf\xe9\"\n").expect("write");
        let errors = load(&latin1).expect_err("not UTF-8");
        let error = &errors.errors()[0];
        assert_eq!((error.line, error.column), (2, 19));
        assert!(error.message.contains("not valid UTF-8"), "{error}");
    }
}
