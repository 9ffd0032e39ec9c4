//! Reads the catalog of a target through a connection of the gateway's own, logged in
//! with the credential the gateway holds for the target (never the agent's session).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gatehouse_core::config::Target;

use super::query::rows;
use super::snapshot::{self, RelKind, Relation, Snapshot};
use crate::upstream::{self, Connect, scram::KeyCache};

/// Relations of every schema but TOAST ones, with view definitions (written under an
/// empty search path, so every name is qualified). Temporary relations belong to
/// other sessions' schemas: only their names are kept (a temporary table is then
/// not taken for a name created since the reading).
const RELATIONS: &str = "SELECT n.nspname, c.relname, c.relkind::text, \
     CASE WHEN c.relkind IN ('v', 'm') AND n.nspname <> 'information_schema' THEN pg_get_viewdef(c.oid) END \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
     AND n.nspname NOT LIKE 'pg\\_toast%'";

/// User-defined functions: language, body and `SET` options.
const FUNCTIONS: &str = "SELECT n.nspname, p.proname, l.lanname, p.prosrc, \
     array_to_string(p.proconfig, E'\\n') \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
     JOIN pg_language l ON l.oid = p.prolang \
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')";

/// Every function's OID and name (the function-call protocol names functions by OID).
const FUNCTION_OIDS: &str = "SELECT p.oid::text, n.nspname, p.proname \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace";

/// Default settings of databases and roles (`ALTER DATABASE/ROLE ... SET`), which
/// apply when a session starts.
const ROLE_SETTINGS: &str = "SELECT d.datname, r.rolname, array_to_string(s.setconfig, E'\\n') \
     FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase \
     LEFT JOIN pg_roles r ON r.oid = s.setrole";

/// Built-in function names.
const BUILTINS: &str =
    "SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace";

/// Where and how the catalog is read.
pub struct Source {
    /// The target (its upstream address possibly replaced by `catalog_upstream`).
    pub target: Target,
    /// TLS for the upstream.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Connect and login timeout; also bounds the reading.
    pub timeout: Duration,
    /// SCRAM keys of the catalog connections.
    pub keys: KeyCache,
}

impl Source {
    /// Reads the catalog.
    pub async fn load(&self) -> Result<Snapshot, String> {
        let read = async {
            let password = self
                .target
                .password
                .as_ref()
                .map(|p| p.resolve())
                .transpose()
                .map_err(|e| format!("cannot use the target's credential: {e}"))?;
            let mut up = upstream::connect(Connect {
                target: &self.target,
                password: password.as_ref(),
                tls: self.tls.clone(),
                params: &[("application_name".into(), "gatehouse-catalog".into())],
                timeout: self.timeout,
                keys: &self.keys,
            })
            .await
            .map_err(|e| format!("cannot connect to read the catalog: {e}"))?;
            let mut buf = up.leftover.split();
            let s = &mut up.stream;
            rows(s, &mut buf, "SET search_path = ''").await?;
            let relations = rows(s, &mut buf, RELATIONS).await?;
            let functions = rows(s, &mut buf, FUNCTIONS).await?;
            let builtins = rows(s, &mut buf, BUILTINS).await?;
            let oids = rows(s, &mut buf, FUNCTION_OIDS).await?;
            let role_settings = rows(s, &mut buf, ROLE_SETTINGS).await?;
            let mut out = BytesMut::new();
            crate::wire::frame::put(&mut out, b'X', |_| {});
            let _ = tokio::io::AsyncWriteExt::write_all(s, &out).await;
            let mut snap = build(relations, functions, builtins);
            snap.function_oids = oids
                .iter()
                .filter_map(|r| {
                    let oid = text(r, 0).parse::<u32>().ok()?;
                    Some((oid, (text(r, 1).to_owned(), text(r, 2).to_owned())))
                })
                .collect();
            snap.role_settings = role_settings
                .iter()
                .map(|r| snapshot::RoleSetting {
                    database: r.first().cloned().flatten(),
                    role: r.get(1).cloned().flatten(),
                    settings: text(r, 2).lines().map(str::to_owned).collect(),
                })
                .collect();
            Ok::<_, String>(snap)
        };
        tokio::time::timeout(self.timeout * 4, read)
            .await
            .map_err(|_| "reading the catalog timed out".to_owned())?
    }
}

fn text(row: &[Option<String>], i: usize) -> &str {
    row.get(i).and_then(Option::as_deref).unwrap_or_default()
}

fn build(
    relations: super::query::Rows,
    functions: super::query::Rows,
    builtins: super::query::Rows,
) -> Snapshot {
    let mut rels: HashMap<String, HashMap<String, Relation>> = HashMap::new();
    let mut names = HashSet::new();
    for r in &relations {
        let (schema, name) = (text(r, 0), text(r, 1));
        let Some(kind) = RelKind::from_relkind(text(r, 2)) else {
            continue;
        };
        let system = schema == "pg_catalog" || schema == "information_schema";
        let body = r.get(3).and_then(Option::as_deref).map(snapshot::view_body);
        // A system view the parser does not follow is still a known relation.
        let body = body.filter(|b| !(system && b.unresolved.is_some()));
        names.insert(name.to_owned());
        if schema.starts_with("pg_temp_") {
            continue;
        }
        rels.entry(schema.to_owned())
            .or_default()
            .insert(name.to_owned(), Relation { kind, body });
    }
    let mut funcs: HashMap<String, HashMap<String, snapshot::Function>> = HashMap::new();
    for r in &functions {
        let (schema, name, lang, src) = (text(r, 0), text(r, 1), text(r, 2), text(r, 3));
        let config: Vec<String> = text(r, 4).lines().map(str::to_owned).collect();
        let f = snapshot::function_body(&format!("{schema}.{name}"), lang, src, &config);
        let slot = funcs.entry(schema.to_owned()).or_default();
        match slot.get_mut(name) {
            // Overloads: what any of them does.
            Some(existing) => {
                snapshot::merge(&mut existing.body, &f.body);
                if existing.search_path.is_none() {
                    existing.search_path = f.search_path;
                }
            }
            None => {
                slot.insert(name.to_owned(), f);
            }
        }
    }
    Snapshot {
        relations: rels,
        relation_names: names,
        functions: funcs,
        builtins: builtins.iter().map(|r| text(r, 0).to_owned()).collect(),
        function_oids: HashMap::new(),
        role_settings: Vec::new(),
        loaded: Instant::now(),
        error: None,
        ever_loaded: true,
    }
}
