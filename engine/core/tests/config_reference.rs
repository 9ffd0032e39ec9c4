//! `docs/configuration.md` against the configuration code.
//!
//! - The first ```toml block (the complete example) loads with the real loader, its
//!   values round-trip, and it sets every key the code accepts.
//! - Every key the code accepts has a row in the table of its section. The keys are
//!   asked of the code itself (serde's "unknown field, expected one of ..." error), so
//!   a key added to a config struct fails this test until it is documented.
//! - The defaults written in those tables are the defaults the code applies.
//! - Every other ```toml block of the doc parses and validates too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::config::{AdminRole, Config, SecretRef, parse_duration};
use gatehouse_core::log::Durability;
use gatehouse_events::Protocol;

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/configuration.md"
));

/// The top-level keys of `Config` (the sections and the two plain keys).
const TOP_LEVEL: &[&str] = &[
    "gateway_id",
    "data_dir",
    "log",
    "shipping",
    "policy",
    "tokens",
    "oidc",
    "roles",
    "approvals",
    "admin",
    "listen",
    "target",
    "ssh",
    "postgres",
    "resolver",
    "cluster",
];

/// One table of the configuration: its heading in the doc, a snippet that makes the
/// code list the table's keys, and where the table is in the example (`*`: every
/// value of a map; arrays of tables are walked element by element).
struct Section {
    heading: &'static str,
    probe: &'static str,
    example_path: &'static [&'static str],
}

const SECTIONS: &[Section] = &[
    Section {
        heading: "## Top-level keys",
        probe: "bogus_key = 1\n",
        example_path: &[],
    },
    Section {
        heading: "## `[log]`",
        probe: "[log]\nbogus_key = 1\n",
        example_path: &["log"],
    },
    Section {
        heading: "## `[shipping]`",
        probe: "[shipping]\nbogus_key = 1\n",
        example_path: &["shipping"],
    },
    Section {
        heading: "### `[shipping.parquet]`",
        probe: "[shipping.parquet]\nbogus_key = 1\n",
        example_path: &["shipping", "parquet"],
    },
    Section {
        heading: "### `[shipping.kafka]`",
        probe: "[shipping.kafka]\nbrokers = \"b:9092\"\nbogus_key = 1\n",
        example_path: &["shipping", "kafka"],
    },
    Section {
        heading: "## `[policy]`",
        probe: "[policy]\nbogus_key = 1\n",
        example_path: &["policy"],
    },
    Section {
        heading: "## `[tokens]`",
        probe: "[tokens]\nbogus_key = 1\n",
        example_path: &["tokens"],
    },
    Section {
        heading: "## `[[oidc]]`",
        probe: "[[oidc]]\nbogus_key = 1\n",
        example_path: &["oidc"],
    },
    Section {
        heading: "## `[roles.NAME]`",
        probe: "[roles.r]\nbogus_key = 1\n",
        example_path: &["roles", "*"],
    },
    Section {
        heading: "## `[approvals]`",
        probe: "[approvals]\nbogus_key = 1\n",
        example_path: &["approvals"],
    },
    Section {
        heading: "## `[admin]`",
        probe: "[admin]\nbogus_key = 1\n",
        example_path: &["admin"],
    },
    Section {
        heading: "### `[[admin.user]]`",
        probe: "[[admin.user]]\nbogus_key = 1\n",
        example_path: &["admin", "user"],
    },
    Section {
        heading: "## `[listen]`",
        probe: "[listen]\nbogus_key = 1\n",
        example_path: &["listen"],
    },
    Section {
        heading: "## `[ssh]`",
        probe: "[ssh]\nbogus_key = 1\n",
        example_path: &["ssh"],
    },
    Section {
        heading: "### `[[ssh.agent_key]]`",
        probe: "[[ssh.agent_key]]\nbogus_key = 1\n",
        example_path: &["ssh", "agent_key"],
    },
    Section {
        heading: "## `[postgres]`",
        probe: "[postgres]\nbogus_key = 1\n",
        example_path: &["postgres"],
    },
    Section {
        heading: "## `[resolver]`",
        probe: "[resolver]\nbogus_key = 1\n",
        example_path: &["resolver"],
    },
    Section {
        heading: "## `[cluster]`",
        probe: "[cluster]\nbogus_key = 1\n",
        example_path: &["cluster"],
    },
    Section {
        heading: "## `[[target]]`",
        probe: "[[target]]\nbogus_key = 1\n",
        example_path: &["target"],
    },
];

/// Keys the complete example may leave out, and why.
const NOT_IN_EXAMPLE: &[(&str, &str)] = &[
    // Exactly one of `jwks_file` and `jwks_url`, and `serve` cannot fetch a URL yet.
    ("## `[[oidc]]`", "jwks_url"),
];

/// The first ```toml block of the doc.
fn example() -> String {
    let mut lines = DOC.lines().skip_while(|l| l.trim_end() != "```toml");
    assert!(lines.next().is_some(), "no ```toml block in the doc");
    let body: Vec<&str> = lines.take_while(|l| l.trim_end() != "```").collect();
    assert!(!body.is_empty(), "the first ```toml block is empty");
    body.join("\n") + "\n"
}

/// The lines under `heading` up to the next heading (headings inside code blocks
/// do not count).
fn section(heading: &str) -> String {
    let mut lines = DOC.lines().skip_while(|l| l.trim_end() != heading);
    assert!(lines.next().is_some(), "the doc has no heading `{heading}`");
    let mut fenced = false;
    let mut out = Vec::new();
    for line in lines {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if !fenced && line.starts_with('#') {
            break;
        }
        out.push(line);
    }
    out.join("\n")
}

/// The table row documenting `key` under `heading`.
fn row(heading: &str, key: &str) -> String {
    let text = section(heading);
    let start = format!("| `{key}` |");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with(&start)).collect();
    assert_eq!(
        rows.len(),
        1,
        "`{key}` should have exactly one row under `{heading}` in docs/configuration.md"
    );
    rows[0].to_owned()
}

/// The names in the code's "expected ..." list for `probe` (unknown field or
/// variant).
fn expected_names(probe: &str) -> Vec<String> {
    let err = Config::parse(probe).expect_err("the probe should be refused");
    let line = err
        .lines()
        .find(|l| l.contains("expected"))
        .unwrap_or_else(|| panic!("no `expected` list in:\n{err}"));
    let list = &line[line.find("expected").unwrap()..];
    let names: Vec<String> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!names.is_empty(), "no names in `{line}`");
    names
}

/// The tables at `path` in a parsed TOML document.
fn tables_at<'a>(value: &'a toml::Value, path: &[&str]) -> Vec<&'a toml::Table> {
    match (path.split_first(), value) {
        (None, toml::Value::Table(t)) => vec![t],
        (None, toml::Value::Array(items)) => items.iter().flat_map(|v| tables_at(v, &[])).collect(),
        (Some((&"*", rest)), toml::Value::Table(t)) => {
            t.values().flat_map(|v| tables_at(v, rest)).collect()
        }
        (Some((key, rest)), toml::Value::Table(t)) => {
            t.get(*key).map(|v| tables_at(v, rest)).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Writes the example to `dir/gatehouse.toml` and loads it like `serve` does.
fn load_example(dir: &Path) -> Config {
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, example()).unwrap();
    Config::load(&path).unwrap_or_else(|e| panic!("the example does not load:\n{e}"))
}

#[test]
fn the_example_loads_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let c = load_example(dir.path());
    let d = dir.path();

    assert!(
        c.warnings().is_empty(),
        "the example should not warn: {:?}",
        c.warnings()
    );
    assert_eq!(c.gateway_id.as_deref(), Some("gw-eu-1"));
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/gatehouse"));

    assert_eq!(
        c.log.durability().unwrap(),
        Durability::Batch { interval_ms: 10 }
    );
    assert_eq!(c.log.segment_bytes, 64 * 1024 * 1024);
    assert_eq!(c.log.retention_age, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(c.log.retention_bytes, Some(10 * 1024 * 1024 * 1024));

    assert!(c.shipping.parquet.enabled);
    let kafka = c.shipping.kafka.as_ref().expect("[shipping.kafka]");
    assert_eq!(kafka.brokers, "kafka-1:9092,kafka-2:9092");
    assert_eq!(kafka.properties["security.protocol"], "SASL_SSL");
    assert_eq!(
        kafka.secret_properties["sasl.password"],
        SecretRef::Env("GATEHOUSE_KAFKA_PASSWORD".into())
    );

    // Relative paths resolve against the config file's directory.
    assert_eq!(
        c.policy.files,
        [d.join("rules/starter.rules"), d.join("rules/local.rules")]
    );
    assert_eq!(c.tokens.key_file, Some(d.join("keys/token.ed25519")));
    assert_eq!(c.tokens.default_ttl, Duration::from_secs(15 * 60));
    assert_eq!(c.oidc[0].jwks_file, Some(d.join("oidc/idp-jwks.json")));
    assert_eq!(c.oidc[0].role_claim.as_deref(), Some("gatehouse_role"));
    assert_eq!(c.listen.kubernetes_cert, Some(d.join("tls/k8s-front.pem")));
    assert_eq!(c.admin.cert, Some(d.join("tls/gatehouse.pem")));

    assert_eq!(
        c.roles["deployer"].protocols,
        [Protocol::Postgres, Protocol::Kubernetes]
    );
    assert!(c.roles["sre"].protocols.is_empty());
    assert!(c.approvals.webhook.is_some());
    assert_eq!(c.admin.listen.to_string(), "0.0.0.0:7070");
    let roles: Vec<AdminRole> = c.admin.users.iter().map(|u| u.role).collect();
    assert_eq!(roles, [AdminRole::Admin, AdminRole::Reviewer]);
    assert_eq!(c.listen.postgres.unwrap().port(), 6432);
    assert_eq!(c.listen.ssh.unwrap().port(), 2222);
    assert_eq!(c.listen.kubernetes.unwrap().port(), 8443);
    assert_eq!(c.ssh.agent_keys[0].target, "bastion");
    assert_eq!(c.postgres.busy_poll, Duration::from_micros(50));
    assert_eq!(c.postgres.max_statements, 10_000);
    assert_eq!(c.postgres.connect_timeout, Duration::from_secs(10));

    // All three protocols.
    let protocols: Vec<(&str, Protocol)> = c
        .targets
        .iter()
        .map(|t| (t.name.as_str(), t.protocol))
        .collect();
    assert_eq!(
        protocols,
        [
            ("prod-db", Protocol::Postgres),
            ("bastion", Protocol::Ssh),
            ("prod-k8s", Protocol::Kubernetes),
            ("staging-k8s", Protocol::Kubernetes),
        ]
    );
    let db = c.target("prod-db").unwrap();
    assert_eq!(db.password, Some(SecretRef::Env("PROD_DB_PASSWORD".into())));
    assert!(db.tls);

    // What the proxies check at start, beyond `Config::validate`.
    for t in &c.targets {
        match t.protocol {
            Protocol::Postgres if t.tls => assert!(t.ca.is_some(), "{}: tls needs ca", t.name),
            Protocol::Kubernetes => assert!(t.ca.is_some(), "{}: kubernetes needs ca", t.name),
            _ => {}
        }
    }

    // `{ file = ... }` secrets of targets resolve against the config directory: put
    // each such file in place and read it back through the secret.
    let mut resolved = 0;
    for t in &c.targets {
        for s in [&t.password, &t.key, &t.token, &t.client_key]
            .into_iter()
            .flatten()
        {
            if let SecretRef::File(p) = s {
                assert!(
                    p.starts_with(d),
                    "{} should be under the config dir",
                    p.display()
                );
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, format!("secret of {}\n", t.name)).unwrap();
                assert_eq!(
                    s.resolve().unwrap().expose(),
                    format!("secret of {}", t.name)
                );
                resolved += 1;
            }
        }
    }
    assert_eq!(
        resolved, 3,
        "bastion key, prod-k8s token, staging-k8s client key"
    );
}

#[test]
fn every_key_the_code_accepts_is_documented() {
    for s in SECTIONS {
        for key in expected_names(s.probe) {
            let r = row(s.heading, &key);
            let cells: Vec<&str> = r.split('|').map(str::trim).collect();
            // "", key, type, default, meaning, ""
            assert!(
                cells.len() == 6 && !cells[2].is_empty() && !cells[4].is_empty(),
                "row of `{key}` under `{}` should be | key | type | default | meaning |: {r}",
                s.heading
            );
        }
    }
    // Enumerated values.
    let target = section("## `[[target]]`");
    for p in expected_names("[[target]]\nname = \"t\"\nprotocol = \"bogus\"\nupstream = \"h:1\"\n")
    {
        assert!(target.contains(&format!("`{p}`")), "protocol `{p}`");
    }
    let user = section("### `[[admin.user]]`");
    for r in
        expected_names("[[admin.user]]\nname = \"a\"\nrole = \"bogus\"\ntoken = { env = \"T\" }\n")
    {
        assert!(user.contains(&format!("`{r}`")), "admin role `{r}`");
    }
    let secrets = section("## Secrets");
    for v in expected_names(
        "[[target]]\nname = \"t\"\nprotocol = \"postgres\"\nupstream = \"h:1\"\npassword = { bogus = \"x\" }\n",
    ) {
        assert!(
            secrets.contains(&format!("| `{{ {v} = ")),
            "secret form `{{ {v} = ... }}` should have a row under ## Secrets"
        );
    }
}

#[test]
fn top_level_sections_are_documented() {
    let mut code = expected_names("bogus_key = 1\n");
    code.sort();
    let mut listed: Vec<String> = TOP_LEVEL.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(
        code, listed,
        "Config's top-level keys changed: update TOP_LEVEL and the doc"
    );
    for key in TOP_LEVEL {
        row("## Top-level keys", key);
        if matches!(*key, "gateway_id" | "data_dir") {
            continue;
        }
        let s = SECTIONS
            .iter()
            .find(|s| {
                s.heading.contains(&format!("[{key}]")) || s.heading.contains(&format!("[{key}."))
            })
            .unwrap_or_else(|| panic!("no section for `{key}` in SECTIONS"));
        section(s.heading);
    }
}

#[test]
fn the_example_sets_every_key() {
    let example: toml::Value = toml::from_str(&example()).unwrap();
    for s in SECTIONS {
        let tables = tables_at(&example, s.example_path);
        assert!(!tables.is_empty(), "the example has no `{}`", s.heading);
        for key in expected_names(s.probe) {
            if NOT_IN_EXAMPLE.contains(&(s.heading, key.as_str())) {
                continue;
            }
            assert!(
                tables.iter().any(|t| t.contains_key(&key)),
                "the example does not set `{key}` of `{}`",
                s.heading
            );
        }
    }
}

/// A default as the code has it.
enum CodeDefault {
    Duration(Duration),
    Literal(String),
}

#[test]
fn documented_defaults_are_the_code_defaults() {
    // Every table present, every key left out except those the tables require. (A
    // table that is absent altogether may differ: without `[policy]`, `watch` is
    // false, which is moot because there are no files to watch.)
    let c = Config::parse(
        "[log]\n[shipping.parquet]\n[policy]\n[tokens]\n[approvals]\n[admin]\n[ssh]\n[postgres]\n[resolver]\n\
         [shipping.kafka]\nbrokers = \"b:9092\"\n\
         [[oidc]]\nissuer = \"i\"\naudiences = []\njwks_file = \"j\"\n\
         [roles.r]\n\
         [[admin.user]]\nname = \"a\"\nrole = \"admin\"\ntoken = { env = \"T\" }\n\
         [[ssh.agent_key]]\nidentity = \"a\"\ntarget = \"t\"\npublic_key = \"k\"\n\
         [[target]]\nname = \"t\"\nprotocol = \"ssh\"\nupstream = \"h\"\n",
    )
    .unwrap();
    let kafka = c.shipping.kafka.as_ref().unwrap();
    let oidc = &c.oidc[0];
    let lit = |s: &dyn ToString| CodeDefault::Literal(s.to_string());
    let list = |v: &dyn std::fmt::Debug| CodeDefault::Literal(format!("{v:?}"));
    let checks: Vec<(&str, &str, CodeDefault)> = vec![
        ("## Top-level keys", "data_dir", lit(&c.data_dir.display())),
        ("## `[log]`", "durability", lit(&c.log.durability)),
        (
            "## `[log]`",
            "fsync_interval",
            CodeDefault::Duration(c.log.fsync_interval),
        ),
        ("## `[log]`", "segment_bytes", lit(&c.log.segment_bytes)),
        (
            "### `[shipping.parquet]`",
            "enabled",
            lit(&c.shipping.parquet.enabled),
        ),
        (
            "### `[shipping.parquet]`",
            "max_rows",
            lit(&c.shipping.parquet.max_rows),
        ),
        (
            "### `[shipping.parquet]`",
            "max_age",
            CodeDefault::Duration(c.shipping.parquet.max_age),
        ),
        (
            "### `[shipping.kafka]`",
            "events_topic",
            lit(&kafka.events_topic),
        ),
        (
            "### `[shipping.kafka]`",
            "alerts_topic",
            lit(&kafka.alerts_topic),
        ),
        (
            "### `[shipping.kafka]`",
            "delivery_timeout",
            CodeDefault::Duration(kafka.delivery_timeout),
        ),
        ("## `[policy]`", "files", list(&c.policy.files)),
        ("## `[policy]`", "watch", lit(&c.policy.watch)),
        (
            "## `[tokens]`",
            "default_ttl",
            CodeDefault::Duration(c.tokens.default_ttl),
        ),
        (
            "## `[tokens]`",
            "max_ttl",
            CodeDefault::Duration(c.tokens.max_ttl),
        ),
        (
            "## `[[oidc]]`",
            "jwks_cache",
            CodeDefault::Duration(oidc.jwks_cache),
        ),
        ("## `[[oidc]]`", "identity_claim", lit(&oidc.identity_claim)),
        (
            "## `[[oidc]]`",
            "identity_prefix",
            lit(&oidc.identity_prefix),
        ),
        (
            "## `[[oidc]]`",
            "leeway",
            CodeDefault::Duration(oidc.leeway),
        ),
        ("## `[roles.NAME]`", "targets", list(&c.roles["r"].targets)),
        (
            "## `[roles.NAME]`",
            "protocols",
            list(&c.roles["r"].protocols),
        ),
        (
            "## `[approvals]`",
            "default_timeout",
            CodeDefault::Duration(c.approvals.default_timeout),
        ),
        ("## `[admin]`", "listen", lit(&c.admin.listen)),
        (
            "## `[admin]`",
            "read_timeout",
            CodeDefault::Duration(c.admin.read_timeout),
        ),
        (
            "## `[admin]`",
            "max_connections",
            lit(&c.admin.max_connections),
        ),
        (
            "## `[admin]`",
            "max_request_bytes",
            lit(&c.admin.max_request_bytes),
        ),
        (
            "### `[[admin.user]]`",
            "groups",
            list(&c.admin.users[0].groups),
        ),
        ("## `[ssh]`", "record_bytes", lit(&c.ssh.record_bytes)),
        (
            "## `[ssh]`",
            "handshake_timeout",
            CodeDefault::Duration(c.ssh.handshake_timeout),
        ),
        (
            "### `[[ssh.agent_key]]`",
            "session_ttl",
            CodeDefault::Duration(c.ssh.agent_keys[0].session_ttl),
        ),
        (
            "## `[postgres]`",
            "busy_poll",
            CodeDefault::Duration(c.postgres.busy_poll),
        ),
        (
            "## `[postgres]`",
            "max_statements",
            lit(&c.postgres.max_statements),
        ),
        (
            "## `[postgres]`",
            "connect_timeout",
            CodeDefault::Duration(c.postgres.connect_timeout),
        ),
        (
            "## `[resolver]`",
            "hosts_file",
            lit(&c.resolver.hosts_file.display()),
        ),
        ("## `[resolver]`", "dns", lit(&c.resolver.dns)),
        (
            "## `[resolver]`",
            "timeout",
            CodeDefault::Duration(c.resolver.timeout),
        ),
        ("## `[cluster]`", "enabled", lit(&c.cluster.enabled)),
        ("## `[[target]]`", "aliases", list(&c.targets[0].aliases)),
        ("## `[[target]]`", "tls", lit(&c.targets[0].tls)),
        (
            "## `[[target]]`",
            "response_timeout",
            CodeDefault::Duration(c.targets[0].response_timeout()),
        ),
    ];
    for (heading, key, want) in checks {
        let r = row(heading, key);
        let cell = r.split('|').nth(3).unwrap();
        let doc = cell
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("no literal default for `{key}` under `{heading}`: {r}"))
            .trim_matches('"');
        match want {
            CodeDefault::Duration(d) => assert_eq!(
                parse_duration(doc),
                Ok(d),
                "default of `{key}` under `{heading}`"
            ),
            CodeDefault::Literal(s) => assert_eq!(doc, s, "default of `{key}` under `{heading}`"),
        }
    }
}

#[test]
fn secret_references_are_as_documented() {
    // One key per reference.
    let two = "[[target]]\nname = \"t\"\nprotocol = \"postgres\"\nupstream = \"h:1\"\npassword = { env = \"A\", file = \"B\" }\n";
    assert!(Config::parse(two).is_err());
    // The documented exception: admin and Kafka `{ file = ... }` secrets are not
    // resolved against the config directory; targets' are.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(
        &path,
        "[shipping.kafka]\nbrokers = \"b:9092\"\n\
         [shipping.kafka.secret_properties]\n\"sasl.password\" = { file = \"kafka-pw\" }\n\
         [[admin.user]]\nname = \"a\"\nrole = \"admin\"\ntoken = { file = \"admin-token\" }\n\
         [[target]]\nname = \"t\"\nprotocol = \"postgres\"\nupstream = \"h:1\"\nuser = \"u\"\npassword = { file = \"pg-pw\" }\n",
    )
    .unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(
        c.shipping.kafka.unwrap().secret_properties["sasl.password"],
        SecretRef::File("kafka-pw".into())
    );
    assert_eq!(
        c.admin.users[0].token,
        SecretRef::File("admin-token".into())
    );
    assert_eq!(
        c.targets[0].password,
        Some(SecretRef::File(dir.path().join("pg-pw")))
    );
    // The documented inline-value warning.
    let inline = Config::parse(
        "[[target]]\nname = \"t\"\nprotocol = \"postgres\"\nupstream = \"h:1\"\nuser = \"u\"\npassword = { value = \"not-for-production\" }\n",
    )
    .unwrap();
    let w = inline.warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("written inline") && !w[0].contains("not-for-production"));
}

#[test]
fn every_toml_block_of_the_doc_is_a_valid_config() {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in DOC.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(Vec::new()),
            (Some(body), "```") => {
                blocks.push(body.join("\n"));
                current = None;
            }
            (Some(body), l) => body.push(l),
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 2, "the example and more");
    for (i, b) in blocks.iter().enumerate() {
        let c = Config::parse(b).unwrap_or_else(|e| panic!("toml block {i}:\n{e}"));
        c.validate()
            .unwrap_or_else(|e| panic!("toml block {i} does not validate:\n{e}"));
    }
}
