#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::*;

fn cols(sql: &str, names: &[&str]) -> Vec<Source> {
    let s = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
    of(&s[0]).columns(names, names.len())
}

fn reads(s: &Source, c: &str) -> bool {
    s.opaque || s.columns.iter().any(|x| x == c)
}

#[test]
fn aliases_lists_and_expressions_follow_the_source() {
    let c = cols(
        "select id, password as p, upper(password) from secrets",
        &["id", "p", "upper"],
    );
    assert!(!reads(&c[0], "password"));
    assert!(c[1].direct && reads(&c[1], "password"));
    assert!(!c[2].direct && reads(&c[2], "password"));
    let c = cols("select c from secrets as h(a, b, c)", &["c"]);
    assert!(c[0].opaque);
    let c = cols(
        "with x(v) as (select password from secrets) select v from x",
        &["v"],
    );
    assert!(reads(&c[0], "password"));
    let c = cols(
        "select s.x from (select password as x from secrets) s",
        &["x"],
    );
    assert!(reads(&c[0], "password"));
}

#[test]
fn rows_and_set_operations_are_covered() {
    for sql in [
        "select row_to_json(h) from secrets h",
        "select to_jsonb(h.*) from secrets h",
        "select h from secrets h",
        "select json_agg(secrets) from secrets",
    ] {
        assert!(cols(sql, &["x"])[0].opaque, "{sql}");
    }
    let c = cols(
        "select id, 'x' from users union select id, password from secrets",
        &["id", "x"],
    );
    assert!(!reads(&c[0], "password"));
    assert!(reads(&c[1], "password"));
    let c = cols("select * from secrets", &["id", "password"]);
    assert_eq!(c[0].columns, ["id"]);
    assert_eq!(c[1].columns, ["password"]);
    // Without names (COPY), a star is opaque.
    let s = Parser::parse_sql(&PostgreSqlDialect {}, "select * from secrets").unwrap();
    assert!(of(&s[0]).columns(&[], 2).iter().all(|c| c.opaque));
    // A count that does not match fails closed.
    assert!(
        cols("select id from secrets", &["id", "x"])
            .iter()
            .all(|c| c.opaque)
    );
}

#[test]
fn functions_we_do_not_know_are_opaque() {
    assert!(cols("select pw(1)", &["pw"])[0].opaque);
    assert!(cols("select x from f() as t(x)", &["x"])[0].opaque);
    assert!(cols("select query_to_xml('select 1', true, true, '')", &["q"])[0].opaque);
    assert!(!cols("select upper(owner) from secrets", &["upper"])[0].opaque);
}

#[test]
fn a_star_over_merged_join_columns_is_not_positional() {
    let c = cols(
        "select * from secrets s full join (select password as owner from secrets) d using (owner)",
        &["owner", "id", "password", "note"],
    );
    assert!(c[0].opaque);
    let c = cols("select * from a natural join b", &["x", "y"]);
    assert!(c.iter().all(|c| c.opaque));
}
