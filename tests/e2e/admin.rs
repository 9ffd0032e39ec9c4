//! The admin API and the CLI commands that use it, through `gatehouse serve`.

use std::process::Command;

use crate::support::{Gateway, free_port};

pub const ADMIN_TOKEN: &str = "admin-token-3f9a77c1";
pub const BOB_TOKEN: &str = "reviewer-token-bob-51d0";

/// A config fragment: admin API on a free port with an admin and a reviewer.
pub fn admin_config(port: u16) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:{port}\"\n\
         [[admin.user]]\nname = \"alice@example.com\"\nrole = \"admin\"\ngroups = [\"dba\", \"sre-oncall\"]\ntoken = {{ env = \"GH_TEST_ADMIN_TOKEN\" }}\n\
         [[admin.user]]\nname = \"bob@example.com\"\nrole = \"reviewer\"\ngroups = [\"dba\", \"sre-oncall\"]\ntoken = {{ env = \"GH_TEST_BOB_TOKEN\" }}\n"
    )
}

/// Runs a `gatehouse` CLI command against the gateway's admin API.
pub fn cli(port: u16, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("GATEHOUSE_ADMIN_URL", format!("http://127.0.0.1:{port}"))
        .env("GATEHOUSE_ADMIN_TOKEN", token)
        .output()
        .unwrap()
}

pub fn curl(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut c = Command::new("python3");
    c.args([
        "-c",
        "import sys, urllib.request, urllib.error\nreq = urllib.request.Request(sys.argv[1])\nif len(sys.argv) > 2: req.add_header('Authorization', 'Bearer ' + sys.argv[2])\ntry:\n    r = urllib.request.urlopen(req); print(r.status); print(r.read().decode())\nexcept urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())",
        &format!("http://127.0.0.1:{port}{path}"),
    ]);
    if let Some(t) = token {
        c.arg(t);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, body) = text.split_once('\n').unwrap_or(("0", ""));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn gateway(port: u16) -> Gateway {
    // Secrets reach the gateway through its environment, as in production.
    let config = format!(
        "{}\n[[target]]\nname = \"db-a\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:1\"\nuser = \"svc\"\npassword = {{ env = \"GH_TEST_DB_PASSWORD\" }}\n\
         [[target]]\nname = \"db-b\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:1\"\nuser = \"svc\"\npassword = {{ env = \"GH_TEST_DB_PASSWORD\" }}\n",
        admin_config(port)
    );
    Gateway::start_with_env(
        &config,
        &[
            ("GH_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GH_TEST_BOB_TOKEN", BOB_TOKEN),
            ("GH_TEST_DB_PASSWORD", "db-password-never-logged"),
        ],
    )
}

#[test]
fn tokens_are_issued_and_revoked_through_the_cli_with_roles_enforced() {
    let port = free_port();
    let gw = gateway(port);
    // Issue.
    let out = cli(
        port,
        ADMIN_TOKEN,
        &[
            "token",
            "issue",
            "--agent",
            "etl",
            "--target",
            "db-a",
            "--ttl",
            "10m",
            "--on-behalf-of",
            "carol",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let note = String::from_utf8_lossy(&out.stderr);
    let id = note.split_whitespace().nth(1).unwrap().to_owned();
    assert!(id.starts_with("tok_"), "{note}");
    // Unknown target, too long a ttl: clear errors.
    let out = cli(
        port,
        ADMIN_TOKEN,
        &["token", "issue", "--agent", "etl", "--target", "nope"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown target `nope`"));
    let out = cli(
        port,
        ADMIN_TOKEN,
        &[
            "token", "issue", "--agent", "etl", "--target", "db-a", "--ttl", "3d",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exceeds the maximum"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A reviewer cannot issue tokens; a wrong token is 401.
    let out = cli(
        port,
        BOB_TOKEN,
        &["token", "issue", "--agent", "etl", "--target", "db-a"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(curl(port, "/v1/approvals", Some("wrong")).0, 401);
    assert_eq!(curl(port, "/v1/approvals", None).0, 401);
    // Revoke.
    let out = cli(
        port,
        ADMIN_TOKEN,
        &["token", "revoke", &id, "--reason", "test"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("revoked {id}")));
    // Approvals: none pending; approving an unknown id is a clear 404.
    let out = cli(port, BOB_TOKEN, &["approvals", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no pending approvals"
    );
    let out = cli(port, BOB_TOKEN, &["approvals", "approve", "apr-0000"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pending approval `apr-0000`"));
    let out = cli(port, BOB_TOKEN, &["approvals", "grants"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no grants in force"
    );
    // Health and metrics.
    let (status, body) = curl(port, "/healthz", None);
    assert_eq!(status, 200);
    assert!(body.contains("\"status\":\"ok\""));
    let (status, body) = curl(port, "/metrics", None);
    assert_eq!(status, 200);
    for metric in [
        "gatehouse_decisions_total{effect=\"block\"}",
        "gatehouse_approvals_pending 0",
        "gatehouse_shipper_lag_records{sink=\"parquet\"}",
        "gatehouse_log_unsynced_records",
    ] {
        assert!(body.contains(metric), "missing {metric} in\n{body}");
    }
    // The events: issued and revoked, never the token.
    let events = gw.events();
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    assert!(
        types.contains(&"credential_issued") && types.contains(&"credential_revoked"),
        "{types:?}"
    );
    let raw = std::fs::read_dir(gw.data().join("log"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect::<Vec<_>>()
        .concat();
    let raw = String::from_utf8_lossy(&raw);
    for secret in [
        token.as_str(),
        ADMIN_TOKEN,
        BOB_TOKEN,
        "db-password-never-logged",
    ] {
        assert!(!raw.contains(secret), "a secret reached the event log");
        assert!(
            !gw.serve_log().contains(secret),
            "a secret reached the operational log"
        );
    }
}
