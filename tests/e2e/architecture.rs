//! The dependency direction of the workspace (see DESIGN.md): `analytics` must not
//! depend on `engine/core`, `dsl` or the proxies; `dsl` must not depend on
//! `engine/events`; `engine/events` depends on no other workspace crate.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut graph = BTreeMap::new();
    for pkg in meta["packages"].as_array().unwrap() {
        let deps = pkg["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null()) // normal dependencies
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .filter(|n| n.starts_with("gatehouse"))
            .collect();
        graph.insert(pkg["name"].as_str().unwrap().to_owned(), deps);
    }
    graph
}

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .to_owned()
}

/// Every workspace crate reachable from `from`.
fn reachable(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(n) = todo.pop() {
        for d in graph.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn dependency_direction_holds() {
    let graph = workspace_graph();
    assert!(graph.contains_key("gatehouse-analytics") && graph.contains_key("gatehouse-dsl"));
    let analytics = reachable(&graph, "gatehouse-analytics");
    for forbidden in ["gatehouse-core", "gatehouse-dsl"] {
        assert!(
            !analytics.contains(forbidden),
            "gatehouse-analytics depends on {forbidden}"
        );
    }
    assert!(
        !analytics.iter().any(|d| d.starts_with("gatehouse-proxy")),
        "gatehouse-analytics depends on a proxy: {analytics:?}"
    );
    assert!(
        !reachable(&graph, "gatehouse-dsl").contains("gatehouse-events"),
        "gatehouse-dsl depends on gatehouse-events"
    );
    assert!(
        reachable(&graph, "gatehouse-events").is_empty(),
        "gatehouse-events must be a leaf crate"
    );
}

#[test]
fn heavy_dependencies_stay_where_they_are_needed() {
    // DataFusion only in analytics; rdkafka only in the shipper (transitively).
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host_triple(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_owned(),
                p["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let nodes = meta["resolve"]["nodes"].as_array().unwrap();
    let edges: BTreeMap<String, Vec<String>> = nodes
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().unwrap().to_owned())
                .collect();
            (n["id"].as_str().unwrap().to_owned(), deps)
        })
        .collect();
    // Every crate (by name) a crate links, transitively, through normal dependencies.
    let closure = |crate_name: &str| -> BTreeSet<String> {
        let start = names
            .iter()
            .find(|(_, n)| n.as_str() == crate_name)
            .map(|(id, _)| id.clone())
            .unwrap();
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(id) = todo.pop() {
            for d in edges.get(&id).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen.iter()
            .filter_map(|id| names.get(id).cloned())
            .collect()
    };
    // The graph walk works: the crates that need them do reach them.
    assert!(closure("gatehouse-analytics").contains("datafusion"));
    assert!(closure("gatehouse-ship").contains("rdkafka"));
    for krate in ["gatehouse-events", "gatehouse-core", "gatehouse-dsl"] {
        let deps = closure(krate);
        assert!(
            !deps.contains("datafusion"),
            "{krate} depends on datafusion"
        );
        assert!(!deps.contains("rdkafka"), "{krate} depends on rdkafka");
    }
}
