//! Classification coverage over psql scripts: `cargo run --release -p
//! gatehouse-proxy-postgres --example classify_corpus -- FILE.sql...` prints how many
//! statements the full walk classified, how many PostgreSQL's grammar did, and which
//! statements PostgreSQL accepts but neither could classify.

use gatehouse_proxy_postgres::classify::corpus::{Tally, psql_statements};

fn main() {
    let mut tally = Tally::default();
    let mut files = 0;
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(2);
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let strings = psql_statements(&text);
        tally.add_all(strings.iter().map(String::as_str));
        files += 1;
    }
    println!("{files} files");
    print!("{}", tally.report());
}
