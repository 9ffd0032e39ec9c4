//! The golden corpus in `grammar/corpus/`: valid files load and pass their inline
//! tests; invalid files render exactly their `.expected` diagnostics.
//!
//! `GATEHOUSE_BLESS=1 cargo test -p gatehouse-core --test corpus` rewrites the
//! `.expected` files from the current output.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::{Path, PathBuf};

use gatehouse_core::policy::{EventSchema, Policy, PolicyError, PolicyOptions, run_tests};
use gatehouse_dsl::{CheckOptions, Code, LoadOptions, Sources};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn options() -> PolicyOptions {
    PolicyOptions {
        load: LoadOptions {
            check: CheckOptions {
                // A fixed "today", so expired-exception warnings do not depend on the clock.
                today: gatehouse_dsl::time::parse_date("2026-06-01"),
            },
            ..LoadOptions::default()
        },
        ..PolicyOptions::default()
    }
}

fn rules_in(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {dir}");
    files
}

fn sources_of(path: &Path) -> Sources {
    let rel = path.strip_prefix(root()).unwrap_or(path);
    let mut s = Sources::new();
    s.add(
        rel.display().to_string().replace("../", ""),
        std::fs::read_to_string(path).unwrap(),
    );
    s
}

fn rendered(path: &Path) -> String {
    let sources = sources_of(path);
    match Policy::from_sources(sources.clone(), options()) {
        Ok(p) => p
            .warnings()
            .iter()
            .map(|d| d.render(&sources, 100))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(PolicyError::Invalid(e)) => e
            .diagnostics
            .iter()
            .map(|d| d.render(&e.sources, 100))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn valid_corpus_loads_and_passes_its_tests() {
    for path in rules_in("grammar/corpus/valid") {
        let sources = sources_of(&path);
        let policy = match Policy::from_sources(sources.clone(), options()) {
            Ok(p) => p,
            Err(e) => panic!("{} does not load:\n{}", path.display(), e.render(100)),
        };
        assert!(
            policy.warnings().is_empty(),
            "{} has warnings:\n{}",
            path.display(),
            rendered(&path)
        );
        let outcomes = run_tests(sources, options()).unwrap();
        assert!(
            !outcomes.is_empty(),
            "{} has no inline test",
            path.display()
        );
        for o in outcomes {
            let failures: Vec<String> = o
                .failures
                .iter()
                .map(|f| format!("{}: {}\n{}", f.location, f.step, f.diff()))
                .collect();
            assert!(
                failures.is_empty(),
                "{} / {}:\n{}",
                path.display(),
                o.name,
                failures.join("\n")
            );
        }
        // Formatting keeps the meaning and is idempotent.
        let text = std::fs::read_to_string(&path).unwrap();
        let once = gatehouse_dsl::format(&text).unwrap();
        assert_eq!(gatehouse_dsl::format(&once).unwrap(), once);
        assert_eq!(
            gatehouse_dsl::parse(0, &once).unwrap(),
            gatehouse_dsl::parse(0, &text).unwrap()
        );
    }
}

#[test]
fn invalid_corpus_matches_expected_diagnostics() {
    let bless = std::env::var_os("GATEHOUSE_BLESS").is_some();
    let mut mismatches = Vec::new();
    for path in rules_in("grammar/corpus/invalid") {
        let actual = rendered(&path);
        assert!(
            !actual.is_empty(),
            "{} produced no diagnostic",
            path.display()
        );
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            mismatches.push(format!(
                "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "diagnostics changed (GATEHOUSE_BLESS=1 to accept):\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn every_code_example_produces_its_code() {
    for code in Code::ALL {
        let Some(example) = code.example() else {
            continue;
        };
        let mut sources = Sources::new();
        sources.add("example.rules", example);
        let codes: Vec<Code> = match gatehouse_dsl::load(sources, &EventSchema, options().load) {
            Ok(r) => r.warnings().iter().map(|d| d.code).collect(),
            Err(e) => e.diagnostics.iter().map(|d| d.code).collect(),
        };
        assert!(codes.contains(code), "example of {code} produced {codes:?}");
    }
}
