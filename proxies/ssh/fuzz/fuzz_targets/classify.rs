//! The command-line classifier on arbitrary input, as an exec and as a shell line:
//! no panic, no stack overflow, no hang; bounded output; a line over the size limit
//! is never judged in part; what `incomplete` says agrees with `classify`.

#![no_main]

#[allow(dead_code)]
#[path = "../../src/shell/mod.rs"]
mod shell;

use shell::{MAX_LEN, Origin, classify, classify_as, incomplete};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
