//! The command-line classifier on arbitrary input, as an exec and as a shell line:
//! no panic, no stack overflow, no hang; bounded output; a line over the size limit
//! is never judged in part; what `incomplete` says agrees with `classify`.
//!
//! brush-parser panics on some inputs; `classify` catches those and refuses the line
//! (fail closed). The hook below lets such panics unwind to that catch; a panic
//! anywhere else still aborts and is reported.

#![no_main]

#[allow(dead_code)]
#[path = "../../src/shell/mod.rs"]
mod shell;

use shell::{MAX_LEN, Origin, classify, classify_as, incomplete};
use libfuzzer_sys::fuzz_target;

static HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    HOOK.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.location().is_some_and(|l| l.file().contains("brush-parser")) {
                return;
            }
            abort(info);
        }));
    });
    let text = String::from_utf8_lossy(data);
    let c = classify(&text);
    assert_eq!(c.too_long, text.len() > MAX_LEN);
    if c.parse_error.is_some() {
        assert!(c.dynamic.is_some(), "a line that does not parse is dynamic");
    }
    if incomplete(&text) {
        assert!(c.parse_error.is_some(), "an incomplete line parsed: {text:?}");
    }
    let _ = classify_as(&text, Origin::ShellLine);
});
