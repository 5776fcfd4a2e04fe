//! `gameday`: the controller daemon and the operator CLI.

mod cli;

fn main() {
    let code = cli::main();
    std::process::exit(code);
}
