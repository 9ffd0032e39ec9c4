//! `gatehouse-guard`: see the library documentation and ADR 0023.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("gatehouse-guard {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match gatehouse_guard::main_from_env() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("gatehouse-guard: {e}");
            ExitCode::from(126)
        }
    }
}
