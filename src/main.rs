//! `gatehouse`: the access gateway's command line. Only CLI wiring lives here; the
//! work is done by the library crates.

use std::process::ExitCode;

mod cli;

fn main() -> ExitCode {
    cli::main()
}
