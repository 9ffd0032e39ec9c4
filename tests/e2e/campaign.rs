//! Lateral-movement campaigns through `gatehouse serve` with the starter policy
//! (`gatehouse_demo::campaign`): every chain shape is held before it runs, found by
//! the hunt and reported once per attempt on the alerts topic; benign agents, another
//! identity's host and a chain past its window raise nothing and hold nothing.

use gatehouse_demo::campaign::{CHAINS, NO_CHAIN};

#[test]
fn chain_shapes_are_held_hunted_and_alerted_and_benign_work_is_not() {
    let examples = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"));
    let mut transcript = Vec::new();
    let r = gatehouse_demo::campaign::run(
        std::path::Path::new(env!("CARGO_BIN_EXE_gatehouse")),
        examples,
        &mut transcript,
    );
    let transcript = String::from_utf8_lossy(&transcript).into_owned();
    assert!(
        r.upstream_failures.is_empty(),
        "{:?}\n{transcript}",
        r.upstream_failures
    );
    // Every chain finding tells the SIEM the query, the hosts it read and the login.
    let findings: usize = r.chain_findings.values().sum();
    assert_eq!(r.findings_with_steps, findings, "{:?}", r.chain_findings);
    for (who, n) in CHAINS {
        assert_eq!(
            r.chain_findings.get(*who).copied().unwrap_or(0),
            *n,
            "chain findings of {who}: {:?}\n{transcript}",
            r.chain_findings
        );
        assert_eq!(
            r.holds.get(*who).copied().unwrap_or(0),
            *n,
            "holds of {who}: {:?}",
            r.holds
        );
        assert!(
            r.hunted.iter().any(|h| h == who),
            "`audit chains` missed {who}:\n{}",
            r.chains
        );
    }
    for who in NO_CHAIN {
        assert_eq!(
            r.findings.get(*who).copied().unwrap_or(0),
            0,
            "findings of {who}: {:?}\n{transcript}",
            r.findings
        );
        assert_eq!(r.holds.get(*who).copied().unwrap_or(0), 0, "holds of {who}");
        assert!(
            !r.hunted.iter().any(|h| h == who),
            "`audit chains` reports a full chain for {who}:\n{}",
            r.chains
        );
    }
}
