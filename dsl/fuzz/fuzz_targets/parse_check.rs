//! Parse + check + (when it loads) evaluate and re-format arbitrary input: no panic,
//! no stack overflow, no hang; formatting what parsed must parse to the same tree.

#![no_main]

use gatehouse_dsl::testing::{MapContext, MapSchema};
use gatehouse_dsl::{LoadOptions, SequenceState, Sources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ast) = gatehouse_dsl::parse(0, text) {
        let formatted = gatehouse_dsl::fmt::format_file(&ast);
        let again = gatehouse_dsl::parse(0, &formatted).expect("formatted output parses");
        assert_eq!(again, ast, "format changed the tree:\n{formatted}");
    }
    let schema = MapSchema::example();
    let mut sources = Sources::new();
    sources.add("fuzz.rules", text);
    match gatehouse_dsl::load(sources, &schema, LoadOptions::default()) {
        Ok(rules) => {
            let mut state = SequenceState::default();
            let ctx = MapContext::new(&schema)
                .with_str("identity", "a")
                .with_str("pg.statement.kind", "select")
                .with_list("ssh.programs", &["nc"])
                .at(1_767_600_000);
            let _ = rules.evaluate(&ctx, &mut state);
            let _ = rules.explain(&ctx, Some(&state));
        }
        Err(e) => {
            for d in &e.diagnostics {
                let _ = d.render(&e.sources, 100);
            }
        }
    }
});
