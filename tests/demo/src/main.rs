//! `gatehouse-demo [--gatehouse PATH]`: the end-to-end demo (see the library docs).
//! `scripts/demo` builds and runs it.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut gatehouse = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--gatehouse" => gatehouse = args.next().map(PathBuf::from),
            other => {
                eprintln!(
                    "usage: gatehouse-demo [--gatehouse PATH]   (unknown argument `{other}`)"
                );
                return ExitCode::from(2);
            }
        }
    }
    // Default: the `gatehouse` binary next to this one (same cargo target dir).
    let gatehouse = gatehouse.or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("gatehouse")))
    });
    let Some(gatehouse) = gatehouse.filter(|p| p.exists()) else {
        eprintln!(
            "gatehouse-demo: cannot find the `gatehouse` binary; build it (cargo build --bin gatehouse) or pass --gatehouse PATH"
        );
        return ExitCode::FAILURE;
    };
    let examples = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
    let mut out = std::io::stdout();
    let report = gatehouse_demo::run(&gatehouse, &examples, &mut out);
    if report.chains.trim().is_empty() {
        eprintln!("gatehouse-demo: `audit chains` found nothing");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
