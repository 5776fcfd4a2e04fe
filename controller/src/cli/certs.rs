//! `gameday certs`: the fleet CA and the certificates it signs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Subcommand};
use gameday::certs::{self, Role, Validity, CONTROLLER_NAME};
use gameday::report::exit;

use super::output::print;

/// Days as a validity.
fn days(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * 24 * 3600)
}

/// Certificate subcommands.
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create the CA (if DIR has none) and certificates for the controller, agents and
    /// operators. Re-running keeps what is current, replaces agent and operator certificates
    /// that are not (and says why), and never replaces the controller's: see `certs issue
    /// --controller`.
    Init {
        /// Directory for the files (created if missing; keys are written 0600).
        #[arg(long)]
        dir: PathBuf,
        /// An agent to issue a certificate for (repeatable).
        #[arg(long = "agent")]
        agents: Vec<String>,
        /// An operator to issue a certificate for (repeatable).
        #[arg(long = "operator")]
        operators: Vec<String>,
        /// Extra DNS name or IP the controller is reached by (repeatable).
        #[arg(long = "controller-san")]
        controller_sans: Vec<String>,
        /// Days the controller, agent and operator certificates are valid.
        #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
        /// Days a new CA is valid (an existing CA is kept as it is).
        #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
        ca_days: u32,
    },
    /// Issue (or rotate) one certificate with the CA already in DIR; `--controller` reissues
    /// the controller's, e.g. with new SANs.
    #[command(group(ArgGroup::new("party").required(true).args(["agent", "operator", "controller"])))]
    Issue {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        dir: PathBuf,
        /// Agent name.
        #[arg(long)]
        agent: Option<String>,
        /// Operator name.
        #[arg(long)]
        operator: Option<String>,
        /// The controller (its certificate carries localhost, 127.0.0.1, ::1 and every
        /// --controller-san).
        #[arg(long)]
        controller: bool,
        /// With --controller: a DNS name or IP the controller is reached by (repeatable).
        #[arg(long = "controller-san", conflicts_with_all = ["agent", "operator"])]
        controller_sans: Vec<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 730, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: u32,
    },
}

/// Runs a certs subcommand.
pub fn run(command: CertsCommand) -> anyhow::Result<i32> {
    let result = match command {
        CertsCommand::Init {
            dir,
            agents,
            operators,
            controller_sans,
            days: leaf,
            ca_days,
        } => certs::init_dir(
            &dir,
            &agents,
            &operators,
            &controller_sans,
            Validity {
                ca: days(ca_days),
                leaf: days(leaf),
            },
        ),
        CertsCommand::Issue {
            dir,
            agent,
            operator,
            controller,
            controller_sans,
            days: leaf,
        } => {
            let (role, name) = match (agent, operator, controller) {
                (Some(a), _, _) => (Role::Agent, a),
                (None, Some(o), _) => (Role::Operator, o),
                _ => (Role::Controller, CONTROLLER_NAME.to_string()),
            };
            certs::issue_into(&dir, role, &name, &controller_sans, days(leaf)).map(|a| vec![a])
        }
    };
    match result {
        Ok(actions) => {
            let mut out = String::new();
            for action in &actions {
                out.push_str(&format!("{action}\n"));
            }
            // Said last, as before: automation (the Ansible role) reads it as "no change".
            if certs::written(&actions).is_empty() {
                out.push_str("nothing to do: every certificate is current\n");
            }
            let controller_replaced = actions.iter().any(|a| {
                a.party == "controller" && matches!(a.outcome, certs::CertOutcome::Replaced(..))
            });
            if controller_replaced {
                out.push_str("restart `gameday serve` to use the new controller certificate\n");
            }
            print(&out)?;
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit::INVALID)
        }
    }
}
