//! `gameday certs`: the fleet CA and the certificates it signs.

use std::path::PathBuf;

use clap::Subcommand;
use gameday::certs::{self, Role};
use gameday::report::exit;

/// Certificate subcommands.
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Create the CA (if DIR has none) and certificates for the controller, agents and operators.
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
    },
    /// Issue (or rotate) one certificate with the CA already in DIR.
    Issue {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        dir: PathBuf,
        /// Agent name.
        #[arg(
            long,
            conflicts_with = "operator",
            required_unless_present = "operator"
        )]
        agent: Option<String>,
        /// Operator name.
        #[arg(long)]
        operator: Option<String>,
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
        } => certs::init_dir(&dir, &agents, &operators, &controller_sans),
        CertsCommand::Issue {
            dir,
            agent,
            operator,
        } => match (agent, operator) {
            (Some(a), _) => certs::issue_into(&dir, Role::Agent, &a),
            (None, Some(o)) => certs::issue_into(&dir, Role::Operator, &o),
            (None, None) => unreachable!("clap requires one of --agent or --operator"),
        },
    };
    match result {
        Ok(paths) => {
            if paths.is_empty() {
                println!("nothing to do: every certificate is current");
            }
            for p in paths {
                println!("wrote {}", p.display());
            }
            Ok(exit::OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(exit::INVALID)
        }
    }
}
