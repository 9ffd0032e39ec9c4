//! OIDC federation end to end: JWTs the test signs (EdDSA) with a key published as a
//! JWKS by a real local HTTP server (`jwks_url`, fetched and cached by the gateway),
//! presented as the Postgres password to `gatehouse serve`; claims mapped to the
//! identity, the person and the role; the role restricts targets.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use gatehouse_events::payload::Payload;

use crate::admin::{ADMIN_TOKEN, BOB_TOKEN, admin_config};
use crate::support::{Gateway, Postgres, free_port};

const ISSUER: &str = "https://idp.test";

/// Serves `body` at every GET until the process ends; counts requests.
fn jwks_server(body: String) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

fn jwt(key: &Ed25519KeyPair, kid: &str, claims: &serde_json::Value) -> String {
    let header =
        B64.encode(serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string());
    let payload = B64.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let sig = B64.encode(key.sign(signing_input.as_bytes()).as_ref());
    format!("{signing_input}.{sig}")
}

fn claims(sub: &str, role: &str, aud: &str, exp_in: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    serde_json::json!({
        "iss": ISSUER, "aud": aud, "sub": sub, "exp": now + exp_in, "iat": now,
        "jti": format!("jti-{sub}-{exp_in}"),
        "act": {"sub": "alice@example.com"}, "gatehouse_role": role,
    })
}

#[test]
fn oidc_jwts_verified_against_a_fetched_jwks_with_roles() {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let key =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let other =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let jwks = serde_json::json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
        "x": B64.encode(key.public_key().as_ref()),
    }]})
    .to_string();
    let (jwks_port, fetches) = jwks_server(jwks);

    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("allow.rules"),
        "rule allow_sql { when pg.statement.kind == select then allow }\n",
    )
    .unwrap();
    let (admin, proxy) = (free_port(), free_port());
    let config = format!(
        "{}\n[policy]\nfiles = [\"allow.rules\"]\n[listen]\npostgres = \"127.0.0.1:{proxy}\"\n\
         [[oidc]]\nissuer = \"{ISSUER}\"\naudiences = [\"gatehouse\"]\njwks_url = \"http://127.0.0.1:{jwks_port}/jwks.json\"\n\
         jwks_cache = \"10m\"\non_behalf_of_claim = \"act.sub\"\nrole_claim = \"gatehouse_role\"\n\
         [roles.db-reader]\ntargets = [\"app-db\"]\nprotocols = [\"postgres\"]\n\
         [roles.k8s-only]\ntargets = [\"app-db\"]\nprotocols = [\"kubernetes\"]\n\
         [[target]]\nname = \"app-db\"\nprotocol = \"postgres\"\nupstream = \"127.0.0.1:{}\"\nuser = \"gatehouse_svc\"\ndatabase = \"app\"\npassword = {{ env = \"GH_TEST_PG_PASSWORD\" }}\n",
        admin_config(admin),
        pg.port
    );
    let gw = Gateway::start_full(
        dir,
        &config,
        &[
            ("GH_TEST_ADMIN_TOKEN", ADMIN_TOKEN),
            ("GH_TEST_BOB_TOKEN", BOB_TOKEN),
            ("GH_TEST_PG_PASSWORD", Postgres::SERVICE_PASSWORD),
        ],
    );
    let psql = |token: &str| {
        let out = pg
            .client("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &proxy.to_string(),
                "-U",
                "ci-bot",
                "-d",
                "app-db",
                "-X",
                "-At",
            ])
            .args(["-c", "select 40 + 2"])
            .env("PGPASSWORD", token)
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };

    // A valid token of a role that may reach app-db.
    let good = jwt(&key, "k1", &claims("ci-bot", "db-reader", "gatehouse", 600));
    let (ok, out) = psql(&good);
    assert!(ok && out.trim() == "42", "{out}");
    // Refusals, each a protocol-native authentication error.
    let cases = [
        (
            "wrong audience",
            jwt(
                &key,
                "k1",
                &claims("ci-bot", "db-reader", "someone-else", 600),
            ),
        ),
        (
            "expired",
            jwt(
                &key,
                "k1",
                &claims("ci-bot", "db-reader", "gatehouse", -600),
            ),
        ),
        (
            "signed by another key",
            jwt(
                &other,
                "k1",
                &claims("ci-bot", "db-reader", "gatehouse", 600),
            ),
        ),
        (
            "role that may not use postgres",
            jwt(&key, "k1", &claims("ci-bot", "k8s-only", "gatehouse", 600)),
        ),
        (
            "unknown role",
            jwt(&key, "k1", &claims("ci-bot", "admin", "gatehouse", 600)),
        ),
    ];
    for (what, token) in &cases {
        let (ok, out) = psql(token);
        assert!(!ok, "{what}: accepted: {out}");
        assert!(
            out.contains("28P01") || out.contains("authentication failed") || out.contains("FATAL"),
            "{what}: {out}"
        );
    }
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 3.., "AAA");
    assert!(!psql(&tampered).0, "a tampered signature was accepted");

    // The JWKS was fetched over HTTP and cached: far fewer fetches than logins (the
    // unknown-key case refetches once, for rotation).
    let n = fetches.load(Ordering::SeqCst);
    assert!((1..=4).contains(&n), "{n} JWKS fetches for 7 logins");

    // Events carry the mapped identity, the person and the role.
    let events = gw.events();
    let opened = events
        .iter()
        .find(|e| matches!(e.payload, Payload::SessionOpened(_)))
        .expect("a session_opened event");
    let who = opened.identity.as_ref().unwrap();
    assert_eq!(who.name, "oidc:ci-bot");
    assert_eq!(who.on_behalf_of.as_deref(), Some("alice@example.com"));
    assert_eq!(who.role.as_deref(), Some("db-reader"));
    let refusals = events
        .iter()
        .filter(|e| e.event_type() == "auth_failed")
        .count();
    assert!(refusals >= cases.len(), "{refusals} auth_failed events");

    // Tokens without a `jti` each get their own credential id, a fingerprint of the
    // token, so one can be revoked (and a grant covers one) without touching the other.
    let without_jti = |exp_in: i64| {
        let mut c = claims("ci-bot", "db-reader", "gatehouse", exp_in);
        c.as_object_mut().unwrap().remove("jti");
        jwt(&key, "k1", &c)
    };
    let (first, second) = (without_jti(900), without_jti(1200));
    for token in [&first, &second] {
        let (ok, out) = psql(token);
        assert!(ok && out.trim() == "42", "{out}");
    }
    let ids: Vec<String> = gw
        .events()
        .iter()
        .filter(|e| matches!(e.payload, Payload::SessionOpened(_)))
        .filter_map(|e| e.identity.as_ref()?.credential_id.clone())
        .filter(|id| id.starts_with("jwt-"))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_ne!(ids[0], ids[1], "two tokens share a credential id");
    for id in &ids {
        assert!(
            id.len() == 24 && id[4..].chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        assert!(!first.contains(&id[4..]) && !second.contains(&id[4..]));
    }
    let out = crate::admin::cli(admin, ADMIN_TOKEN, &["token", "revoke", &ids[0]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, out) = psql(&first);
    assert!(!ok, "a revoked token without jti was accepted: {out}");
    let (ok, out) = psql(&second);
    assert!(
        ok && out.trim() == "42",
        "the other token was refused too: {out}"
    );
}
