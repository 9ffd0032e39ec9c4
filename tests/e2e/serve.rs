//! `gatehouse serve`: start, hot reload, clean stop.

use std::time::Duration;

use crate::support::{Gateway, free_port, gatehouse, wait_until};

#[test]
fn serve_reloads_rules_on_change_and_sighup_keeping_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("policy.rules");
    std::fs::write(
        &rules,
        "rule reads { when pg.statement.kind == select then allow }\n",
    )
    .unwrap();
    // Its own admin port: the default (7070) would collide with other tests.
    let gw = Gateway::start_in(
        dir,
        &format!(
            "[policy]\nfiles = [\"{}\"]\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            rules.display(),
            free_port()
        ),
    );

    // A broken edit: diagnostics in the operational log, last good set kept.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(
        &rules,
        "rule reads { when pg.statement.knid == select then allow }\n",
    )
    .unwrap();
    wait_until(
        "the failed reload to be logged",
        Duration::from_secs(10),
        || gw.serve_log().contains("Policy reload failed"),
    );
    let log = gw.serve_log();
    assert!(
        log.contains("knid") && log.contains("did you mean"),
        "diagnostics missing:\n{log}"
    );

    // A good edit reloads.
    std::fs::write(
        &rules,
        "rule reads { when pg.statement.kind in [select, insert] then allow }\n",
    )
    .unwrap();
    wait_until("the reload", Duration::from_secs(10), || {
        gw.serve_log().contains("Policy reloaded.")
    });
    // SIGHUP reloads too.
    gw.proc.signal("HUP");
    wait_until("the SIGHUP reload", Duration::from_secs(10), || {
        gw.serve_log().contains("SIGHUP")
    });

    let dir = gw.stop();
    let out = gatehouse(&dir.path().join("data"))
        .args(["log", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn serve_refuses_to_start_on_a_bad_policy_or_config() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bad.rules");
    std::fs::write(
        &rules,
        "rule r { when ssh.argvv contains \"x\" then block }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("gatehouse.toml"),
        format!(
            "data_dir = \"data\"\n[policy]\nfiles = [\"{}\"]\n",
            rules.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "-c"])
        .arg(dir.path().join("gatehouse.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("ssh.argvv") && err.contains("ssh.argv"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("gatehouse.toml"),
        "data_dir = \"data\"\n[log]\ndurabilty = \"strict\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "-c"])
        .arg(dir.path().join("gatehouse.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("durabilty") && err.contains("line 3"), "{err}");
}

#[test]
fn serve_uses_the_data_dir_given_on_the_command_line_over_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let elsewhere = root.join("elsewhere");
    let gw = Gateway::start_full(
        dir,
        &format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            free_port()
        ),
        &[("GATEHOUSE_DATA_DIR", elsewhere.to_str().unwrap())],
    );
    assert!(
        elsewhere.join("log").is_dir(),
        "no event log under the --data-dir directory"
    );
    assert!(
        !root.join("data").join("log").exists(),
        "the config file's data_dir was used"
    );
    assert!(
        gw.serve_log().contains("overrides the configuration file"),
        "{}",
        gw.serve_log()
    );
    gw.stop();
}
