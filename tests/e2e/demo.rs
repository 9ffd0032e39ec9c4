//! `scripts/demo` runs `gatehouse-demo`; this runs the same library against the
//! binary under test and checks the story it tells.

use gatehouse_demo::Outcome;

#[test]
fn the_demo_runs_to_completion_and_tells_the_whole_story() {
    let examples = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"));
    let mut transcript = Vec::new();
    let report = gatehouse_demo::run(
        std::path::Path::new(env!("CARGO_BIN_EXE_gatehouse")),
        examples,
        &mut transcript,
    );
    let transcript = String::from_utf8(transcript).unwrap();
    eprintln!("{transcript}");
    let count = |o: Outcome| report.steps.iter().filter(|s| s.outcome == o).count();
    assert!(count(Outcome::Allowed) >= 2, "{transcript}");
    assert!(count(Outcome::Masked) >= 3, "{transcript}");
    assert!(count(Outcome::Blocked) >= 4, "{transcript}");
    assert_eq!(count(Outcome::HeldThenApproved), 1, "{transcript}");
    // Denied first, then retried: the refusal did not disarm the chain.
    assert_eq!(count(Outcome::HeldThenDenied), 1, "{transcript}");
    assert_eq!(
        report.chain_alerts, 2,
        "one finding per attempt:\n{transcript}"
    );
    // The reviewer read the chain: the query and the hosts it read, the SSH login
    // and command, the pod, and the reasons the agent stated on each protocol.
    for needle in [
        "SELECT hostname, role, admin_password FROM infra.hosts",
        "read: localhost, db-1.internal",
        "SSH login to localhost",
        "uname -s",
        "create Pod default/debug: images [busybox",
        "service account default",
        "stated reason: OPS-1234: inventory audit",
        "stated reason: OPS-1234: check the bastion",
        "why: ",
    ] {
        assert!(
            report.approval.contains(needle),
            "`{needle}` not in what the reviewer read:\n{}",
            report.approval
        );
    }
    // Masking reached the agent: no card number, password or Secret value in clear.
    let agent_saw: String = report.steps.iter().map(|s| s.output.as_str()).collect();
    for secret in [
        "4111 1111 1111 1111",
        "Tr0ub4dor&3",
        "aHVudGVyMg==",
        "sk_live_0123456789abcdef",
    ] {
        assert!(
            !agent_saw.contains(secret),
            "`{secret}` reached the agent:\n{agent_saw}"
        );
    }
    // The chain query finds the full Postgres -> SSH -> Kubernetes chain.
    assert!(report.chains.contains("deploy-bot"), "{}", report.chains);
    assert!(
        report.chains.contains("pg->ssh->k8s"),
        "no full chain:\n{}",
        report.chains
    );
    // The alert is an OCSF Detection Finding with the chain's events related.
    assert_eq!(report.alert["class_uid"], 2004, "{}", report.alert);
    let related = report.alert["finding_info"]["related_events"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(related >= 3, "{}", report.alert);
    assert!(report.decisions.contains("block"), "{}", report.decisions);
    // Replay shows the statements and requests in order, with decisions and the
    // masked result sample (never the clear value).
    for needle in [
        "infra.hosts",
        "=> mask",
        "****",
        "/pods",
        "require_approval",
    ] {
        assert!(
            report.replays.contains(needle),
            "replay lacks `{needle}`:\n{}",
            report.replays
        );
    }
    assert!(
        !report.replays.contains("Tr0ub4dor&3"),
        "{}",
        report.replays
    );
    // No held secret in any artifact: raw files, decoded log and Parquet, Kafka, API.
    assert_eq!(report.secrets.scanned.len(), 5, "{:?}", report.secrets);
    for (what, bytes) in &report.secrets.scanned {
        assert!(
            *bytes > 1000,
            "{what} was not really scanned: {bytes} bytes"
        );
    }
    assert!(report.secrets.hits.is_empty(), "{:?}", report.secrets.hits);
}
