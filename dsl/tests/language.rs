//! End-to-end tests of the language over the in-memory example schema.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

use gatehouse_dsl::testing::{MapContext, MapSchema, Owned};
use gatehouse_dsl::*;

fn load_str(text: &str) -> Result<RuleSet, LoadError> {
    let schema = MapSchema::example();
    let mut sources = Sources::new();
    sources.add("test.rules", text);
    load(sources, &schema, LoadOptions::default())
}

fn rules(text: &str) -> RuleSet {
    match load_str(text) {
        Ok(r) => r,
        Err(e) => {
            let rendered: Vec<String> = e
                .diagnostics
                .iter()
                .map(|d| d.render(&e.sources, 100))
                .collect();
            panic!("policy did not load:\n{}", rendered.join("\n"));
        }
    }
}

fn codes(text: &str) -> Vec<Code> {
    match load_str(text) {
        Ok(r) => r.warnings().iter().map(|d| d.code).collect(),
        Err(e) => e.diagnostics.iter().map(|d| d.code).collect(),
    }
}

fn decide(rs: &RuleSet, ctx: &MapContext<'_>) -> Verdict {
    rs.evaluate(ctx, &mut SequenceState::default())
}

#[test]
fn default_is_deny_and_allow_rules_permit() {
    let schema = MapSchema::example();
    let rs = rules(r#"rule ok { when identity == "bot" then allow }"#);
    let v = decide(&rs, &MapContext::new(&schema).with_str("identity", "bot"));
    assert_eq!(v.effect, Effect::Allow);
    let v = decide(&rs, &MapContext::new(&schema).with_str("identity", "eve"));
    assert_eq!(v.effect, Effect::Block);
    assert!(v.default_applied);
    assert!(v.reason.unwrap().contains("default deny"));
}

#[test]
fn effects_combine_by_strength_not_order() {
    let schema = MapSchema::example();
    let text_a = r#"
        rule a_allow { when true then allow }
        rule b_block { when pg.statement.kind == drop then block "no drops" }
        rule c_approve { when pg.statement.kind in [drop, truncate] then require approval from "dba" timeout 5m }
        rule d_mask { when pg.statement.kind == select then mask columns ["password"] }
    "#;
    // Same rules, reversed order: same decisions.
    let mut items: Vec<&str> = text_a
        .split("rule ")
        .filter(|s| !s.trim().is_empty())
        .collect();
    items.reverse();
    let text_b: String = items.iter().map(|s| format!("rule {s}\n")).collect();
    for text in [text_a.to_owned(), text_b] {
        let rs = rules(&text);
        let drop = MapContext::new(&schema).with_str("pg.statement.kind", "drop");
        let v = decide(&rs, &drop);
        assert_eq!(v.effect, Effect::Block);
        assert_eq!(v.reason.as_deref(), Some("no drops"));
        let trunc = MapContext::new(&schema).with_str("pg.statement.kind", "truncate");
        let v = decide(&rs, &trunc);
        assert_eq!(v.effect, Effect::RequireApproval);
        let a = v.approval().unwrap();
        assert_eq!((&*a.group, a.timeout_micros), ("dba", 300_000_000));
        let sel = MapContext::new(&schema).with_str("pg.statement.kind", "select");
        let v = decide(&rs, &sel);
        assert_eq!(v.effect, Effect::Mask);
        assert_eq!(v.mask_value("PassWord", "hunter2"), "****");
        let names: Vec<&str> = v.matched.iter().map(|m| &*m.name).collect();
        assert_eq!(names, ["a_allow", "d_mask"]);
    }
}

#[test]
fn mask_alone_does_not_allow() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"rule m { when pg.statement.kind == select then mask values matching /\d{4}/ keep last 2 }"#,
    );
    let v = decide(
        &rs,
        &MapContext::new(&schema).with_str("pg.statement.kind", "select"),
    );
    assert_eq!(v.effect, Effect::Block);
}

#[test]
fn row_limits_bound_what_is_allowed_and_the_smallest_wins() {
    let schema = MapSchema::example();
    let text = r#"
        rule ok { when pg.statement.kind in [update, delete] then allow }
        rule wide { when pg.statement.kind in [update, delete] then limit rows 100 }
        rule narrow { when pg.statement.kind == delete then limit rows 10 }
    "#;
    let rs = rules(text);
    let delete = MapContext::new(&schema).with_str("pg.statement.kind", "delete");
    let v = decide(&rs, &delete);
    assert_eq!((v.effect, v.row_limit), (Effect::Allow, Some(10)));
    let v = decide(
        &rs,
        &MapContext::new(&schema).with_str("pg.statement.kind", "update"),
    );
    assert_eq!((v.effect, v.row_limit), (Effect::Allow, Some(100)));
    let v = decide(
        &rs,
        &MapContext::new(&schema).with_str("pg.statement.kind", "select"),
    );
    assert_eq!(v.row_limit, None);
    // A bound allows nothing by itself.
    let rs = rules(r#"rule b { when pg.statement.kind == delete then limit rows 5 }"#);
    assert_eq!(decide(&rs, &delete).effect, Effect::Block);
    // Formatting keeps it; a negative bound is refused with a code.
    let formatted = gatehouse_dsl::format(text).unwrap();
    assert!(formatted.contains("then limit rows 10"), "{formatted}");
    assert_eq!(
        codes(r#"rule b { when pg.statement.kind == delete then limit rows -1 }"#),
        [Code::E0018]
    );
}

#[test]
fn missing_fields_are_unknown_not_false() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"
        rule no_where { when not pg.statement.has_where then block "needs a where" }
        rule ok { when true then allow }
    "#,
    );
    // An SSH event has no `pg.statement.has_where`: `not unknown` is unknown.
    let v = decide(&rs, &MapContext::new(&schema).with_str("ssh.program", "ls"));
    assert_eq!(v.effect, Effect::Allow);
    let v = decide(
        &rs,
        &MapContext::new(&schema).with("pg.statement.has_where", Owned::Bool(false)),
    );
    assert_eq!(v.effect, Effect::Block);
}

#[test]
fn operators() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"
        list nets = ["10.0.0.0/8", "192.168.1.7"]
        list pivots = [ssh, nc, curl]
        rule r_cidr { when client.ip in nets then alert }
        rule r_intersects { when ssh.programs intersects pivots then alert }
        rule r_contains { when ssh.argv contains "-R" then alert }
        rule r_icontains { when ssh.program icontains "CUR" then alert }
        rule r_starts { when ssh.argv starts_with "/etc" then alert }
        rule r_glob { when ssh.argv glob "/home/**/authorized_keys" then alert }
        rule r_regex { when ssh.program matches /^py(thon)?[0-9.]*$/i then alert }
        rule r_int { when pg.statement.count >= 2 then alert }
        rule r_between { when time.of_day between 22:00 and 06:00 then alert }
        rule r_weekday { when time.weekday in [sat, sun] then alert }
        rule r_field_eq { when ssh.target.host == k8s.namespace then alert }
        rule r_exists { when k8s.namespace exists and not (k8s.namespace in ["default"]) then alert }
        rule r_not_in { when identity not in ["a", "b"] then alert }
    "#,
    );
    let fired = |ctx: MapContext<'_>| -> Vec<String> {
        let v = decide(&rs, &ctx);
        v.alerts.iter().map(|a| a.rule.to_string()).collect()
    };
    let ip = |s: &str| Owned::Ip(s.parse().unwrap());
    assert_eq!(
        fired(MapContext::new(&schema).with("client.ip", ip("10.2.3.4"))),
        ["r_cidr"]
    );
    assert_eq!(
        fired(MapContext::new(&schema).with("client.ip", ip("192.168.1.7"))),
        ["r_cidr"]
    );
    assert!(fired(MapContext::new(&schema).with("client.ip", ip("192.168.1.8"))).is_empty());
    assert_eq!(
        fired(MapContext::new(&schema).with_list("ssh.programs", &["bash", "nc"])),
        ["r_intersects"]
    );
    let argv = fired(
        MapContext::new(&schema)
            .with_list("ssh.argv", &["ssh", "-R", "/home/u/.ssh/authorized_keys"]),
    );
    assert_eq!(argv, ["r_contains", "r_glob"]);
    assert_eq!(
        fired(MapContext::new(&schema).with_list("ssh.argv", &["/etc/passwd"])),
        ["r_starts"]
    );
    assert_eq!(
        fired(MapContext::new(&schema).with_str("ssh.program", "Curl")),
        ["r_icontains"]
    );
    assert_eq!(
        fired(MapContext::new(&schema).with_str("ssh.program", "Python3.11")),
        ["r_regex"]
    );
    assert_eq!(
        fired(MapContext::new(&schema).with("pg.statement.count", Owned::Int(3))),
        ["r_int"]
    );
    // 2026-01-05 is a Monday; 23:00 is in the overnight window.
    let monday = 1_767_571_200;
    assert_eq!(
        fired(MapContext::new(&schema).at(monday + 23 * 3600)),
        ["r_between"]
    );
    assert!(fired(MapContext::new(&schema).at(monday + 12 * 3600)).is_empty());
    assert_eq!(
        fired(MapContext::new(&schema).at(monday + 5 * 86_400 + 12 * 3600)),
        ["r_weekday"]
    );
    assert_eq!(
        fired(
            MapContext::new(&schema)
                .with_str("ssh.target.host", "prod")
                .with_str("k8s.namespace", "prod")
        ),
        ["r_exists", "r_field_eq"]
    );
    assert_eq!(
        fired(MapContext::new(&schema).with_str("identity", "c")),
        ["r_not_in"]
    );
    assert!(fired(MapContext::new(&schema).with_str("identity", "a")).is_empty());
}

#[test]
fn macros_are_typed_and_expanded() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"
        macro runs(p: str) = ssh.program == p or ssh.programs contains p
        macro night = time.hour < 6
        rule nc { when runs("nc") then block "no netcat" }
        rule late { when night and runs("psql") then alert severity low }
    "#,
    );
    let v = decide(
        &rs,
        &MapContext::new(&schema).with_list("ssh.programs", &["sh", "nc"]),
    );
    assert_eq!(v.effect, Effect::Block);
    let v = decide(
        &rs,
        &MapContext::new(&schema)
            .with_str("ssh.program", "psql")
            .at(3600),
    );
    assert_eq!(v.alerts.len(), 1);
    assert_eq!(v.alerts[0].severity.ocsf_id(), 2);
    assert_eq!(
        codes(
            r#"macro m(p: str) = identity == p
        rule r { when m(1) then allow }"#
        ),
        [Code::E0011]
    );
    assert_eq!(
        codes(
            r#"macro a = b
        macro b = a
        rule r { when a then allow }"#
        ),
        [Code::E0011]
    );
    // `list` is a keyword and a parameter type.
    let rs = rules(
        r#"
        macro any_shell(l: list) = l intersects [sh, bash]
        rule r { when any_shell(ssh.programs) then block "no shells" }
    "#,
    );
    let v = decide(
        &rs,
        &MapContext::new(&schema).with_list("ssh.programs", &["env", "bash"]),
    );
    assert_eq!(v.effect, Effect::Block);
    assert_eq!(
        codes(
            r#"macro m(l: list) = l intersects [a]
        rule r { when m(identity) then allow }"#
        ),
        [Code::E0011]
    );
}

#[test]
fn exceptions_apply_until_they_expire() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"rule no_drop {
            when pg.statement.kind == drop
            unless migration when identity == "migrator" owner "dba@example.com" expires 2026-01-10
            then block "no drops"
        }
        rule ok { when true then allow }"#,
    );
    let day = 86_400;
    let base = 1_767_571_200; // 2026-01-05
    let ev = |t: i64| {
        MapContext::new(&schema)
            .with_str("pg.statement.kind", "drop")
            .with_str("identity", "migrator")
            .at(t)
    };
    assert_eq!(decide(&rs, &ev(base)).effect, Effect::Allow);
    assert_eq!(
        decide(&rs, &ev(base + 5 * day + 3600)).effect,
        Effect::Allow
    );
    assert_eq!(decide(&rs, &ev(base + 6 * day)).effect, Effect::Block);
    // `rules check` warns about it after the date.
    let mut sources = Sources::new();
    sources.add(
        "x.rules",
        r#"rule r { when true unless old when true owner "a" expires 2020-01-01 then allow }"#,
    );
    let opts = LoadOptions {
        check: CheckOptions {
            today: time::parse_date("2026-01-01"),
        },
        ..LoadOptions::default()
    };
    let rs = load(sources, &schema, opts)
        .map_err(|e| e.diagnostics)
        .unwrap();
    assert_eq!(
        rs.warnings().iter().map(|d| d.code).collect::<Vec<_>>(),
        [Code::W0001]
    );
}

#[test]
fn alerts_render_templates() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"rule r { when ssh.program == "nc" then alert severity critical tags [attack.t1095]
            message "{identity} ran {ssh.program} at {time.of_day} {{literally}}" }"#,
    );
    let v = decide(
        &rs,
        &MapContext::new(&schema)
            .with_str("identity", "bot")
            .with_str("ssh.program", "nc")
            .at(3600 * 9 + 60 * 5),
    );
    assert_eq!(v.alerts[0].message, "bot ran nc at 09:05 {literally}");
    assert_eq!(v.alerts[0].severity.ocsf_id(), 5);
    assert_eq!(&*v.alerts[0].tags, ["attack.t1095".to_owned()]);
    assert_eq!(v.effect, Effect::Block, "alert-only rules do not allow");
}

#[test]
fn diagnostics_have_codes_and_suggestions() {
    let e = load_str("rule r { when pg.statment.kind == select then allow }").unwrap_err();
    assert_eq!(e.diagnostics[0].code, Code::E0002);
    assert!(
        e.diagnostics[0]
            .help
            .iter()
            .any(|h| h.contains("`pg.statement.kind`"))
    );
    let e = load_str("rule r { when pg.statement.kind == dorp then allow }").unwrap_err();
    assert_eq!(e.diagnostics[0].code, Code::E0013);
    assert!(
        e.diagnostics[0]
            .help
            .iter()
            .any(|h| h.contains("did you mean `drop`?"))
    );
    // Every error at once.
    let e = load_str(
        r#"rule a { when identity == 3 then allow }
           rule b { when ssh.program matches /(/ then allow }
           rule c { when true then alert severity urgent }"#,
    )
    .unwrap_err();
    let codes: Vec<Code> = e.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, [Code::E0003, Code::E0008, Code::E0010]);
    assert_eq!(
        codes_of("rule r { when identity = \"x\" then allow }"),
        [Code::E0001]
    );
    assert_eq!(codes_of("rule r { when true }"), [Code::E0006]);
    assert_eq!(
        codes_of("rule r { when pg.result.column(\"x\") == \"y\" then allow }"),
        [Code::E0014]
    );
    assert_eq!(
        codes_of("rule r { when true then allow }\nrule r { when true then block }"),
        [Code::E0005]
    );
    let rendered = e.diagnostics[0].render(&e.sources, 100);
    assert!(rendered.contains("E0003"), "{rendered}");
    assert!(rendered.contains("test.rules:1:"), "{rendered}");
}

fn codes_of(text: &str) -> Vec<Code> {
    codes(text)
}

const CHAIN: &str = r#"
    list infra_tables = ["infra.hosts"]
    sequence chain by identity within 30m {
      stage recon: pg.statement.tables intersects infra_tables
        capture hosts = pg.result.column("hostname") limit 4
      stage hop within 10m: ssh.session.open and ssh.target.host in recon.hosts
      stage pod: k8s.verb == create and k8s.resource == "pods"
      until event.type == session_closed
      then require approval from "sre-oncall" timeout 15m
      severity critical
      tags [attack.lateral_movement]
    }
    rule ok { when true then allow }
    rule chain_armed { when sequence chain armed after hop and k8s.verb exists then alert severity low }
"#;

struct Chain<'s> {
    schema: &'s MapSchema,
}

impl<'s> Chain<'s> {
    fn recon(&self, who: &str, t: i64) -> MapContext<'s> {
        MapContext::new(self.schema)
            .with_str("identity", who)
            .with_list("pg.statement.tables", &["infra.hosts"])
            .with_str("event.type", "request")
            .at(t)
            .with_ref(1)
    }
    fn result(&self, who: &str, t: i64) -> MapContext<'s> {
        MapContext::new(self.schema)
            .with_str("identity", who)
            .with_str("event.type", "result")
            .at(t)
            .with_ref(2)
    }
    fn hop(&self, who: &str, host: &str, t: i64) -> MapContext<'s> {
        MapContext::new(self.schema)
            .with_str("identity", who)
            .with("ssh.session.open", Owned::Bool(true))
            .with_str("ssh.target.host", host)
            .with_str("event.type", "request")
            .at(t)
            .with_ref(3)
    }
    fn pod(&self, who: &str, t: i64) -> MapContext<'s> {
        MapContext::new(self.schema)
            .with_str("identity", who)
            .with_str("k8s.verb", "create")
            .with_str("k8s.resource", "pods")
            .with_str("event.type", "request")
            .at(t)
            .with_ref(4)
    }
}

#[test]
fn sequence_completes_on_third_event_only() {
    let schema = MapSchema::example();
    let rs = rules(CHAIN);
    let c = Chain { schema: &schema };
    let mut st = SequenceState::default();
    let v = rs.evaluate(&c.recon("a", 0), &mut st);
    assert_eq!(v.effect, Effect::Allow);
    assert_eq!(v.captures.len(), 1);
    assert_eq!(&*v.captures[0].name, "chain.recon.hosts");
    assert_eq!((&*v.captures[0].arg, v.captures[0].limit), ("hostname", 4));
    let stored = rs.on_result(
        &c.result("a", 1),
        &mut st,
        1,
        &v.captures[0].name,
        &["db1".into(), "db2".into()],
    );
    assert_eq!(stored, 1);
    assert_eq!(
        rs.evaluate(&c.hop("a", "db2", 60), &mut st).effect,
        Effect::Allow
    );
    let v = rs.evaluate(&c.pod("a", 120), &mut st);
    assert_eq!(v.effect, Effect::RequireApproval);
    assert!(v.matched("chain"));
    assert!(
        v.matched("chain_armed"),
        "partial state is visible to rules"
    );
    let alert = v.alerts.iter().find(|a| a.sequence).unwrap();
    assert_eq!(alert.related, [1, 3, 4]);
    assert_eq!(alert.severity.ocsf_id(), 5);
    // Armed until the completing request is seen to run.
    assert_eq!(st.live_partials(), 1);
    assert_eq!(st.pending_completions(), 1);
    // It did not run (the approval was denied): a retry completes the chain again.
    assert_eq!(rs.on_outcome(&c.result("a", 5), &mut st, 4, false), 1);
    assert_eq!(st.pending_completions(), 0);
    let v = rs.evaluate(&c.pod("a", 125), &mut st);
    assert_eq!(v.effect, Effect::RequireApproval);
    assert!(
        v.alerts.iter().any(|a| a.sequence),
        "the retry is alerted too"
    );
    // Another request's outcome changes nothing.
    assert_eq!(rs.on_outcome(&c.result("a", 5), &mut st, 99, true), 0);
    // It ran (approved): the partial match is used up, a further pod is not held.
    assert_eq!(rs.on_outcome(&c.result("a", 5), &mut st, 4, true), 1);
    assert_eq!(st.live_partials(), 0);
    assert_eq!(st.pending_completions(), 0);
    assert_eq!(rs.evaluate(&c.pod("a", 130), &mut st).effect, Effect::Allow);
}

#[test]
fn sequence_needs_same_key_and_captured_host() {
    let schema = MapSchema::example();
    let rs = rules(CHAIN);
    let c = Chain { schema: &schema };
    let mut st = SequenceState::default();
    rs.evaluate(&c.recon("a", 0), &mut st);
    rs.on_result(&c.result("a", 1), &mut st, 1, "hosts", &["db1".into()]);
    assert_eq!(
        rs.evaluate(&c.hop("b", "db1", 60), &mut st).effect,
        Effect::Allow
    );
    assert_eq!(
        rs.evaluate(&c.hop("a", "elsewhere", 61), &mut st).effect,
        Effect::Allow
    );
    assert_eq!(rs.evaluate(&c.pod("a", 120), &mut st).effect, Effect::Allow);
    assert_eq!(rs.evaluate(&c.pod("b", 120), &mut st).effect, Effect::Allow);
}

#[test]
fn sequence_windows_and_until_reset() {
    let schema = MapSchema::example();
    let rs = rules(CHAIN);
    let c = Chain { schema: &schema };
    // Stage window: hop more than 10m after recon.
    let mut st = SequenceState::default();
    rs.evaluate(&c.recon("a", 0), &mut st);
    rs.on_result(&c.result("a", 1), &mut st, 1, "hosts", &["db1".into()]);
    rs.evaluate(&c.hop("a", "db1", 11 * 60), &mut st);
    assert_eq!(
        rs.evaluate(&c.pod("a", 12 * 60), &mut st).effect,
        Effect::Allow
    );
    // Overall window: pod more than 30m after recon.
    let mut st = SequenceState::default();
    rs.evaluate(&c.recon("a", 0), &mut st);
    rs.on_result(&c.result("a", 1), &mut st, 1, "hosts", &["db1".into()]);
    rs.evaluate(&c.hop("a", "db1", 60), &mut st);
    assert_eq!(
        rs.evaluate(&c.pod("a", 31 * 60), &mut st).effect,
        Effect::Allow
    );
    // `until`: the session closed.
    let mut st = SequenceState::default();
    rs.evaluate(&c.recon("a", 0), &mut st);
    rs.on_result(&c.result("a", 1), &mut st, 1, "hosts", &["db1".into()]);
    rs.evaluate(&c.hop("a", "db1", 60), &mut st);
    let closed = MapContext::new(&schema)
        .with_str("identity", "a")
        .with_str("event.type", "session_closed")
        .at(70);
    rs.observe(&closed, &mut st);
    assert_eq!(st.live_partials(), 0);
    assert_eq!(rs.evaluate(&c.pod("a", 120), &mut st).effect, Effect::Allow);
}

#[test]
fn sequence_state_replays_and_survives_reload() {
    let schema = MapSchema::example();
    let rs = rules(CHAIN);
    let c = Chain { schema: &schema };
    let mut st = SequenceState::default();
    rs.replay(&c.recon("a", 0), &mut st);
    rs.on_result(&c.result("a", 1), &mut st, 1, "hosts", &["db1".into()]);
    rs.replay(&c.hop("a", "db1", 60), &mut st);
    assert_eq!(st.live_partials(), 1);
    // Reload with an unrelated change: the partial survives.
    let reloaded = rules(&format!("{CHAIN}\nrule extra {{ when false then block }}"));
    assert_eq!(
        reloaded.evaluate(&c.pod("a", 120), &mut st.clone()).effect,
        Effect::RequireApproval
    );
    // Reload with the sequence changed: the partial is dropped.
    let changed = rules(&CHAIN.replace("within 30m", "within 31m"));
    assert_eq!(
        changed.evaluate(&c.pod("a", 120), &mut st).effect,
        Effect::Allow
    );
    assert_eq!(st.live_partials(), 0);
}

#[test]
fn sequence_state_is_bounded_with_evictions() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"sequence s within 1h {
            stage a: ssh.program == "a"
              capture p = ssh.target.host
            stage b: ssh.program == "b"
            then alert
        }"#,
    );
    let mut st = SequenceState::new(Limits {
        max_per_key: 2,
        max_total: 16,
    });
    let mut evictions = Vec::new();
    for i in 0..40 {
        let ctx = MapContext::new(&schema)
            .with_str("identity", &format!("id{}", i % 20))
            .with_str("ssh.program", "a")
            .with_str("ssh.target.host", &format!("h{i}"))
            .at(i);
        evictions.extend(rs.evaluate(&ctx, &mut st).evictions);
    }
    assert!(st.live_partials() <= 16);
    assert!(
        evictions
            .iter()
            .any(|e| e.reason == EvictionReason::TotalLimit)
    );
    let mut st = SequenceState::new(Limits {
        max_per_key: 2,
        max_total: 100,
    });
    let mut evictions = Vec::new();
    for i in 0..5 {
        let ctx = MapContext::new(&schema)
            .with_str("identity", "one")
            .with_str("ssh.program", "a")
            .with_str("ssh.target.host", &format!("h{i}"))
            .at(i);
        evictions.extend(rs.evaluate(&ctx, &mut st).evictions);
    }
    assert_eq!(st.live_partials(), 2);
    assert_eq!(evictions.len(), 3);
    assert_eq!(evictions[0].reason, EvictionReason::KeyLimit);
    assert_eq!(evictions[0].started, 0);
}

#[test]
fn sequence_checks() {
    assert_eq!(
        codes(
            "sequence s by pg.statement.kind within 5m { stage a: true stage b: true then alert }"
        ),
        [Code::E0015]
    );
    assert_eq!(
        codes("sequence s within 5m { stage a: true then alert }"),
        [Code::E0006]
    );
    assert_eq!(
        codes(
            "sequence s within 5m { stage a: ssh.target.host in b.x stage b: true capture x = identity then alert }"
        ),
        [Code::E0015]
    );
    assert_eq!(
        codes(
            "sequence s within 5m { stage a: true capture x = identity limit 0 stage b: true then alert }"
        ),
        [Code::E0018]
    );
}

#[test]
fn fail_closed_on_bad_context_values() {
    struct Liar;
    impl Context for Liar {
        fn get(&self, _: FieldId) -> Value<'_> {
            Value::Int(1)
        }
    }
    let rs = rules(
        r#"rule ok { when identity starts_with "x" then allow }
        rule all { when true then allow }"#,
    );
    let v = rs.evaluate(&Liar, &mut SequenceState::default());
    assert_eq!(v.effect, Effect::Block);
    assert!(v.reason.unwrap().starts_with("policy evaluation error"));
}

#[test]
fn defaults_per_target() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"default deny
        default allow when target == "dev""#,
    );
    let v = decide(&rs, &MapContext::new(&schema).with_str("target", "dev"));
    assert_eq!(v.effect, Effect::Allow);
    assert!(v.default_applied);
    let v = decide(&rs, &MapContext::new(&schema).with_str("target", "prod"));
    assert_eq!(v.effect, Effect::Block);
}

#[test]
fn explain_says_why() {
    let schema = MapSchema::example();
    let rs = rules(r#"rule r { when identity == "a" and ssh.program == "nc" then block }"#);
    let ex = rs.explain(&MapContext::new(&schema).with_str("identity", "a"), None);
    assert_eq!(ex.len(), 1);
    assert!(!ex[0].matched);
    assert_eq!(
        ex[0].conditions,
        [
            ("identity == \"a\"".to_owned(), Tri::True),
            ("ssh.program == \"nc\"".to_owned(), Tri::Unknown)
        ]
    );
}

#[test]
fn format_is_canonical_and_idempotent() {
    let text = "// header\nlist   a=[\"x\",\"y\"]\nrule r{when identity in a and(ssh.program==\"nc\" or not pg.statement.has_where)\n// why\nthen block \"m\" severity high tags[attack.t1]}\n";
    let once = format(text).unwrap();
    assert_eq!(
        once,
        "// header\nlist a = [\"x\", \"y\"]\n\nrule r {\n  when identity in a and (ssh.program == \"nc\" or not pg.statement.has_where)\n  // why\n  then block \"m\"\n  severity high\n  tags [attack.t1]\n}\n"
    );
    assert_eq!(format(&once).unwrap(), once);
}

#[test]
fn error_reference_lists_every_code() {
    let doc = error_reference();
    for code in Code::ALL {
        assert!(doc.contains(&format!("## {}", code.as_str())));
    }
}

#[test]
fn errors_doc_is_generated_from_the_registry() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/errors.md");
    let current = error_reference();
    if std::env::var_os("GATEHOUSE_BLESS").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == current,
        "docs/errors.md is stale: run `gatehouse rules errors > docs/errors.md` (or GATEHOUSE_BLESS=1)"
    );
}

/// A chain that starts again while the completion of the last one waits for its
/// outcome is a new partial match: the old one's outcome does not use it up.
#[test]
fn a_restart_while_a_completion_waits_is_a_new_chain() {
    let schema = MapSchema::example();
    let rs = rules(
        r#"sequence s within 1h {
            stage a: ssh.program == "a"
            stage b: ssh.program == "b"
            then block "no"
        }"#,
    );
    let mut st = SequenceState::default();
    let ev = |program: &str, t: i64, r: u128| {
        MapContext::new(&schema)
            .with_str("identity", "one")
            .with_str("ssh.program", program)
            .at(t)
            .with_ref(r)
    };
    let completes = |v: &gatehouse_dsl::Verdict| v.alerts.iter().any(|a| a.sequence);
    assert!(!completes(&rs.evaluate(&ev("a", 0, 1), &mut st)));
    assert!(completes(&rs.evaluate(&ev("b", 1, 2), &mut st)));
    // `a` again before the outcome of `b` is known: a second partial match.
    rs.evaluate(&ev("a", 2, 3), &mut st);
    assert_eq!(st.live_partials(), 2);
    // The first `b` ran after all: only its own chain is used up.
    assert_eq!(rs.on_outcome(&ev("b", 3, 4), &mut st, 2, true), 1);
    assert_eq!(st.live_partials(), 1);
    assert!(completes(&rs.evaluate(&ev("b", 4, 5), &mut st)));
}

/// Judge, then apply (ADR 0024): judging changes nothing, and judging each request
/// then replaying it gives the verdicts and the state that evaluating gives.
#[test]
fn judging_changes_nothing_and_judge_then_replay_is_evaluate() {
    let schema = MapSchema::example();
    let rs = rules(CHAIN);
    let c = Chain { schema: &schema };
    let (mut evaluated, mut judged) = (SequenceState::default(), SequenceState::default());
    let steps = [
        c.recon("a", 0),
        c.hop("a", "db2", 60),
        c.hop("b", "db2", 61),
        c.pod("a", 120),
        c.pod("a", 125),
    ];
    for (i, ctx) in steps.iter().enumerate() {
        let expected = rs.evaluate(ctx, &mut evaluated);
        let before = (judged.live_partials(), judged.pending_completions());
        let (v, touches) = rs.judge(ctx, &judged);
        assert_eq!(
            (judged.live_partials(), judged.pending_completions()),
            before,
            "step {i}: judging changed the state"
        );
        assert_eq!(v.effect, expected.effect, "step {i}");
        assert_eq!(v.staged, expected.staged, "step {i}");
        assert_eq!(
            v.alerts
                .iter()
                .map(|a| a.related.clone())
                .collect::<Vec<_>>(),
            expected
                .alerts
                .iter()
                .map(|a| a.related.clone())
                .collect::<Vec<_>>(),
            "step {i}"
        );
        if touches {
            rs.replay(ctx, &mut judged);
        }
        assert_eq!(
            (judged.live_partials(), judged.pending_completions()),
            (evaluated.live_partials(), evaluated.pending_completions()),
            "step {i}: applying gave another state"
        );
        if i == 0 {
            // The recon's result fills the capture in both.
            for st in [&mut evaluated, &mut judged] {
                rs.on_result(
                    &c.result("a", 1),
                    st,
                    1,
                    &expected.captures[0].name,
                    &["db2".into()],
                );
            }
        }
    }
    // The chain completed in both: held at the first pod.
    assert_eq!(
        rs.judge(&c.pod("a", 126), &judged).0.effect,
        Effect::RequireApproval
    );
    // A request that moves nothing says so.
    assert!(!rs.judge(&c.hop("z", "db9", 61), &judged).1);
}
