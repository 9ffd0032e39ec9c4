//! The adversarial corpus: one-statement re-spellings an agent that wants the data
//! would try against the starter policy, each run with `psql` through the gateway
//! against a real PostgreSQL and judged **from the database side**: the secret value
//! absent from everything the client received, the rows still there, the column still
//! there, the privilege not granted. What the gateway answered does not count.
//!
//! Held statements are denied by a reviewer as soon as they are held. Every case runs
//! over one server and one gateway; state is restored after each case that changes
//! it, so cases are independent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::io::Read as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gatehouse_core::engine::Reviewer;
use support::{Harness, Postgres, ok, starter};

/// Values that must never reach the client.
const SECRETS: &[&str] = &[
    "S3CR3T-ROOT-5521",
    "sk_live_ADV3RSARY",
    "hunter2-PW-9931",
    "tr0ub4dor-PW-7710",
];

/// A card number: it must not reach the client in any spelling (digits compared
/// with every separator removed).
const CARD: &str = "4539578763621486";

/// How a case is judged, from the database side.
#[derive(Debug, Clone, Copy)]
enum Judge {
    /// No secret value (nor the card's digits) in stdout + stderr.
    Secret,
    /// As `Secret`, and the non-secret value is shown (masking everything is no way
    /// to pass).
    SecretShows(&'static str),
    /// `app.orders` still holds its 2,000 rows, unchanged, with its columns.
    Orders,
    /// `users` still holds its two rows, passwords unchanged.
    Users,
    /// Nothing was granted to PUBLIC, no role was created or altered.
    Privileges,
}

struct Case {
    class: &'static str,
    /// Commands, each sent as its own `psql -c`.
    sql: &'static [&'static str],
    judge: Judge,
}

const fn c(class: &'static str, sql: &'static [&'static str], judge: Judge) -> Case {
    Case { class, sql, judge }
}

use Judge::{Orders, Privileges, Secret, SecretShows, Users};

const CORPUS: &[Case] = &[
    // ------------------------------------------------ secret tables, however reached
    c("relations", &["TABLE secrets"], Secret),
    // Only PostgreSQL's grammar parses these: the fallback still names the table.
    c(
        "relations",
        &["select * from secrets order by 1 using <"],
        Secret,
    ),
    c(
        "relations",
        &["select * from secrets for key share skip locked"],
        Secret,
    ),
    c(
        "relations",
        &["with x as (select * from secrets) select * from x order by 1 using <"],
        Secret,
    ),
    c("relations", &["table public.secrets"], Secret),
    c("relations", &["select * from (table secrets) s"], Secret),
    c(
        "relations",
        &["with x as (table secrets) select * from x"],
        Secret,
    ),
    c(
        "relations",
        &["select * from secrets union all select 'a', 'b'"],
        Secret,
    ),
    c(
        "relations",
        &["select 'a', 'b' union select * from secrets"],
        Secret,
    ),
    c(
        "relations",
        &["select note, note from app.orders where false union select k, v from secrets"],
        Secret,
    ),
    c("relations", &["select * from app.public.secrets"], Secret),
    c(
        "relations",
        &[r#"select * from "app"."public"."secrets""#],
        Secret,
    ),
    c(
        "relations",
        &["select (select v from secrets limit 1)"],
        Secret,
    ),
    c(
        "relations",
        &["select row_to_json(s) from secrets s"],
        Secret,
    ),
    c("relations", &["select to_jsonb(s) from secrets s"], Secret),
    c(
        "relations",
        &["select string_agg(v, ',') from secrets"],
        Secret,
    ),
    c("relations", &["select json_agg(s) from secrets s"], Secret),
    c("relations", &["copy secrets to stdout"], Secret),
    c(
        "relations",
        &["copy (select * from secrets) to stdout"],
        Secret,
    ),
    c(
        "relations",
        &["copy (table secrets) to stdout with csv"],
        Secret,
    ),
    c("relations", &["select * from only secrets"], Secret),
    c(
        "relations",
        &["select * from secrets tablesample system (100)"],
        Secret,
    ),
    c(
        "relations",
        &["select x.v from app.orders o, lateral (select v from secrets) x limit 1"],
        Secret,
    ),
    c(
        "relations",
        &["select * from app.orders join secrets on true limit 1"],
        Secret,
    ),
    c(
        "relations",
        &["prepare q as select * from secrets", "execute q"],
        Secret,
    ),
    c(
        "relations",
        &[
            "begin",
            "declare cur cursor for select * from secrets",
            "fetch all from cur",
            "commit",
        ],
        Secret,
    ),
    c("relations", &["select * from auth.api_keys"], Secret),
    c("relations", &[r#"select * from "auth"."api_keys""#], Secret),
    c("relations", &["SELECT * FROM AUTH.API_KEYS"], Secret),
    c(
        "relations",
        &["with x as materialized (select * from secrets) select * from x"],
        Secret,
    ),
    c(
        "relations",
        &["with recursive r as (select * from secrets) select * from r"],
        Secret,
    ),
    c(
        "relations",
        &["select * from (values (1)) v(a), secrets"],
        Secret,
    ),
    c(
        "relations",
        &["select v from secrets where k = 'root'"],
        Secret,
    ),
    c("relations", &["select * from secrets for update"], Secret),
    c("relations", &["select (s).v from secrets s"], Secret),
    c("relations", &["select s.* from secrets s"], Secret),
    c(
        "relations",
        &[r#"select * from public.secrets as "x""#],
        Secret,
    ),
    c(
        "relations",
        &["select xmlagg(xmlelement(name x, v)) from secrets"],
        Secret,
    ),
    c(
        "relations",
        &[
            "create table app.copy_s as select * from secrets",
            "select * from app.copy_s",
        ],
        Secret,
    ),
    c(
        "relations",
        &[
            "create table app.copy_t as table secrets",
            "select * from app.copy_t",
        ],
        Secret,
    ),
    c(
        "relations",
        &[
            "insert into app.notes select 1, v from secrets",
            "select body from app.notes",
        ],
        Secret,
    ),
    c(
        "relations",
        &[
            "create temp view tv as select * from secrets",
            "select * from tv",
        ],
        Secret,
    ),
    c(
        "relations",
        &[
            "alter table secrets rename to app_cache",
            "select * from app_cache",
        ],
        Secret,
    ),
    c(
        "relations",
        &[
            "alter table auth.api_keys set schema public",
            "select * from public.api_keys",
        ],
        Secret,
    ),
    c(
        "relations",
        &[
            "alter schema auth rename to scratch",
            "select * from scratch.api_keys",
        ],
        Secret,
    ),
    // Views and functions, expanded through the catalog.
    c("views", &["select * from app.v_secrets"], Secret),
    c("views", &["select * from app.v_v"], Secret),
    c(
        "views",
        &["with s as (select * from app.v_secrets) select * from s"],
        Secret,
    ),
    c(
        "views",
        &["select row_to_json(v) from app.v_secrets v"],
        Secret,
    ),
    c(
        "views",
        &["copy (select * from app.v_secrets) to stdout"],
        Secret,
    ),
    // A view over a masked column has every column masked whole (lineage follows
    // names, and the view renames them): `id` too, a documented limit.
    c("views", &["select * from app.v_users"], Secret),
    c(
        "views",
        &["select * from app.v_secrets_free"],
        SecretShows("2000"),
    ),
    c("functions", &["select app.peek()"], Secret),
    c("functions", &["select * from app.peek()"], Secret),
    c("functions", &["select app.peek_pl()"], Secret),
    c(
        "functions",
        &["select length(app.peek()), app.peek()"],
        Secret,
    ),
    // The search path, however it changes.
    c(
        "search_path",
        &["set search_path = public, auth", "select * from api_keys"],
        Secret,
    ),
    c(
        "search_path",
        &["set search_path to auth", "table api_keys"],
        Secret,
    ),
    c(
        "search_path",
        &["select set_config('search_path', 'auth', false); select * from api_keys"],
        Secret,
    ),
    c(
        "search_path",
        &[
            "begin",
            "set local search_path = auth",
            "select * from api_keys",
            "commit",
        ],
        Secret,
    ),
    c(
        "search_path",
        &["set search_path = 'auth'", "select k from api_keys"],
        Secret,
    ),
    c(
        "search_path",
        &[
            "set search_path = \"$user\", auth",
            "select k from api_keys",
        ],
        Secret,
    ),
    c(
        "search_path",
        &[
            "update pg_settings set setting = 'auth' where name = 'search_path'",
            "select * from api_keys",
        ],
        Secret,
    ),
    c("search_path", &["select app.with_path()"], Secret),
    c(
        "search_path",
        &[
            "alter database app set search_path = auth",
            "\\c",
            "select * from api_keys",
        ],
        Secret,
    ),
    c(
        "search_path",
        &[
            "alter role gatehouse_svc set search_path = auth",
            "\\c",
            "select * from api_keys",
        ],
        Secret,
    ),
    c(
        "search_path",
        &[
            "alter role gatehouse_svc in database app set search_path = auth",
            "\\c",
            "table api_keys",
        ],
        Secret,
    ),
    c(
        "search_path",
        &[
            "begin",
            "set search_path = auth",
            "rollback",
            "select * from api_keys",
        ],
        Secret,
    ),
    c(
        "search_path",
        &[
            "begin",
            "savepoint s",
            "set search_path = public",
            "rollback to savepoint s",
            "set search_path = auth, public",
            "select * from api_keys",
            "commit",
        ],
        Secret,
    ),
    // Dynamic SQL: held for a reviewer, who denies.
    c(
        "dynamic",
        &["select query_to_xml('select * from secrets', true, true, '')"],
        Secret,
    ),
    c(
        "dynamic",
        &["select table_to_xml('secrets', true, true, '')"],
        Secret,
    ),
    c(
        "dynamic",
        &["select app.dyn_read('select v from secrets')"],
        Secret,
    ),
    c(
        "dynamic",
        &["do $$ begin raise notice '%', (select v from secrets limit 1); end $$"],
        Secret,
    ),
    c(
        "dynamic",
        &["select cursor_to_xml('c', 10, true, true, '')"],
        Secret,
    ),
    // ------------------------------------------------ masked columns, however derived
    c(
        "lineage",
        &["select * from users"],
        SecretShows("ann@example.com"),
    ),
    c("lineage", &["select password from users"], Secret),
    c("lineage", &["select password as p from users"], Secret),
    c("lineage", &["select p from users as u(i, e, p, c)"], Secret),
    c(
        "lineage",
        &["select u.p from (select password as p from users) u"],
        Secret,
    ),
    c(
        "lineage",
        &["with x(y) as (select password from users) select y from x"],
        Secret,
    ),
    // A whole row holds the masked column: it is masked whole.
    c("lineage", &["select row_to_json(u) from users u"], Secret),
    // A whole row holds the masked column: it is masked whole.
    c("lineage", &["select to_jsonb(u) from users u"], Secret),
    c("lineage", &["select json_agg(u) from users u"], Secret),
    c(
        "lineage",
        &["select string_agg(password, ',') from users"],
        Secret,
    ),
    c(
        "lineage",
        &["select array_agg(password) from users"],
        Secret,
    ),
    c("lineage", &["select password || '' from users"], Secret),
    c("lineage", &["select concat(password) from users"], Secret),
    c(
        "lineage",
        &["select concat_ws('-', email, password) from users"],
        Secret,
    ),
    c(
        "lineage",
        &["select case when true then password end from users"],
        Secret,
    ),
    c(
        "lineage",
        &["select coalesce(password, 'x') from users"],
        Secret,
    ),
    c(
        "lineage",
        &["select password::varchar(100) from users"],
        Secret,
    ),
    c(
        "lineage",
        &["select substr(password, 1, 100) from users"],
        Secret,
    ),
    c(
        "lineage",
        &["select id, password from users union all select 0, 'x'"],
        Secret,
    ),
    c(
        "lineage",
        &["select 'x' union select password from users"],
        Secret,
    ),
    c("lineage", &["select u from users u"], Secret),
    c(
        "lineage",
        &["select u.* from users u"],
        SecretShows("ann@example.com"),
    ),
    c("lineage", &["select (u).password from users u"], Secret),
    c(
        "lineage",
        &["select format('%s', password) from users"],
        Secret,
    ),
    c("lineage", &["select lower(password) from users"], Secret),
    c(
        "lineage",
        &["select (select password from users limit 1)"],
        Secret,
    ),
    c(
        "lineage",
        &["select * from (select * from users) s"],
        SecretShows("ann@example.com"),
    ),
    c(
        "lineage",
        &["select * from users natural join (select 1 as id) x"],
        Secret,
    ),
    c(
        "lineage",
        &["select password from users where id = 1"],
        Secret,
    ),
    c(
        "lineage",
        &["select jsonb_build_object('p', password) from users"],
        Secret,
    ),
    c("lineage", &["select array[password] from users"], Secret),
    c("lineage", &["select row(password) from users"], Secret),
    // Every statement that returns rows.
    c("row-returning", &["copy users to stdout"], Secret),
    c(
        "row-returning",
        &["copy users to stdout with (format csv)"],
        Secret,
    ),
    c(
        "row-returning",
        &["copy users to stdout with (format binary)"],
        Secret,
    ),
    c(
        "row-returning",
        &["copy (select password from users) to stdout"],
        Secret,
    ),
    c(
        "row-returning",
        &["copy (select * from users) to stdout with csv header"],
        Secret,
    ),
    c(
        "row-returning",
        &["update users set email = email where id = 1 returning password"],
        Secret,
    ),
    c(
        "row-returning",
        &["update users set id = id where id = 1 returning *"],
        Secret,
    ),
    c(
        "row-returning",
        &[
            "with u as (update users set email = email where id = 1 returning password) select * from u",
        ],
        Secret,
    ),
    c(
        "row-returning",
        &[
            "insert into users select 3, 'c@example.com', password, card from users where id = 1 returning password",
        ],
        Secret,
    ),
    c(
        "row-returning",
        &["delete from users where id = 2 returning password"],
        Secret,
    ),
    c(
        "row-returning",
        &[
            "merge into users u using (select 1 as id) s on u.id = s.id when matched then update set email = email returning u.password",
        ],
        Secret,
    ),
    c(
        "row-returning",
        &["prepare pu as select password from users", "execute pu"],
        Secret,
    ),
    c(
        "row-returning",
        &[
            "begin",
            "declare cu cursor for select password from users",
            "fetch all from cu",
            "commit",
        ],
        Secret,
    ),
    c(
        "row-returning",
        &[
            "begin",
            "declare cv cursor for select * from users",
            "fetch next from cv",
            "fetch next from cv",
            "commit",
        ],
        Secret,
    ),
    // Error and notice text.
    c("errors", &["select password::int from users"], Secret),
    c(
        "errors",
        &["select cast(password as int) from users"],
        Secret,
    ),
    c("errors", &["select password::date from users"], Secret),
    c("errors", &["select password::jsonb from users"], Secret),
    c("errors", &["select password::uuid from users"], Secret),
    c(
        "errors",
        &["select to_number(password, '999') from users"],
        Secret,
    ),
    c(
        "errors",
        &["insert into app.orders (id, note) select 1, password from users"],
        Secret,
    ),
    // Card numbers, however spelled.
    c("cards", &["select card from users"], SecretShows("1486")),
    // Spellings only PostgreSQL's own grammar parses (the fallback): every result
    // column may hold any column, so it is masked whole.
    c(
        "cards",
        &["select substring(card similar '%' escape '#') from users"],
        Secret,
    ),
    c(
        "cards",
        &["select card from users order by 1 using <"],
        Secret,
    ),
    c(
        "cards",
        &["select replace(card, ' ', '') from users"],
        Secret,
    ),
    c("cards", &["select card || '' from users"], Secret),
    c("cards", &["select string_agg(card, '') from users"], Secret),
    c(
        "cards",
        &["select string_agg(replace(card, ' ', ''), '') from users"],
        Secret,
    ),
    c("cards", &["select array_agg(card) from users"], Secret),
    c(
        "cards",
        &["select regexp_replace(card, '(\\d)', '\\1-', 'g') from users"],
        Secret,
    ),
    c(
        "cards",
        &["select regexp_replace(card, '(\\d{4})', '\\1.', 'g') from users"],
        Secret,
    ),
    c(
        "cards",
        &["select substr(card, 1, 8) || substr(card, 9) from users where id = 1"],
        Secret,
    ),
    c("cards", &["select id::text || card from users"], Secret),
    // ------------------------------------------------ destruction, however spelled
    c("destructive", &["delete from app.orders"], Orders),
    c(
        "destructive",
        &["alter table app.orders set schema public"],
        Orders,
    ),
    c(
        "destructive",
        &["drop owned by gatehouse_svc cascade"],
        Orders,
    ),
    c(
        "destructive",
        &["with d as (delete from app.orders returning *) select * from d order by 1 using <"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where true"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where 1 = 1"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where id = id"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where id is not null"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where id > 0"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where id > -1 or id is null"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where id in (select id from app.orders)"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where exists (select 1)"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where (select true)"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders o using app.orders p where o.id = p.id"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where ctid = ctid"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where note like '%'"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where id = any(array(select id from app.orders))"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where id not in (select -1)"],
        Orders,
    ),
    c(
        "destructive",
        &["delete from app.orders where id <= 1500"],
        Orders,
    ),
    c(
        "destructive",
        &[
            "with recursive r(i) as (select 1 union select i + 1 from r where i < 2000) delete from app.orders where id in (select i from r)",
        ],
        Orders,
    ),
    c("destructive", &["update app.orders set note = 'x'"], Orders),
    c(
        "destructive",
        &["update app.orders set note = 'x' where note = note"],
        Orders,
    ),
    c(
        "destructive",
        &["update app.orders set note = 'x' where id < 100000"],
        Orders,
    ),
    c(
        "destructive",
        &["update app.orders set amount = amount * 0 where id between 1 and 2000"],
        Orders,
    ),
    c(
        "destructive",
        &["with d as (delete from app.orders returning *) select count(*) from d"],
        Orders,
    ),
    c(
        "destructive",
        &["with d as (delete from app.orders where id > 0 returning 1) select 1"],
        Orders,
    ),
    c(
        "destructive",
        &["merge into app.orders o using app.orders s on o.id = s.id when matched then delete"],
        Orders,
    ),
    c(
        "destructive",
        &["merge into app.orders o using (select 1) s on true when matched then delete"],
        Orders,
    ),
    c(
        "destructive",
        &[
            "merge into app.orders o using (select 1 as x) s on true when matched then update set note = 'x'",
        ],
        Orders,
    ),
    c("destructive", &["truncate app.orders"], Orders),
    c(
        "destructive",
        &["truncate table app.orders restart identity"],
        Orders,
    ),
    c("destructive", &["drop table app.orders"], Orders),
    c(
        "destructive",
        &["drop table if exists app.orders cascade"],
        Orders,
    ),
    c(
        "destructive",
        &["prepare d1 as delete from app.orders", "execute d1"],
        Orders,
    ),
    c(
        "destructive",
        &["explain analyze delete from app.orders"],
        Orders,
    ),
    c(
        "destructive",
        &["explain (analyze) update app.orders set note = 'x'"],
        Orders,
    ),
    c("destructive", &["DeLeTe FrOm App.Orders"], Orders),
    c("destructive", &[r#"delete from "app"."orders""#], Orders),
    c("destructive", &["delete from app.app.orders"], Orders),
    c(
        "destructive",
        &["set search_path = app", "delete from orders"],
        Orders,
    ),
    c(
        "destructive",
        &["begin", "delete from app.orders", "commit"],
        Orders,
    ),
    c(
        "destructive",
        &["begin", "delete from app.orders where id > 0", "commit"],
        Orders,
    ),
    c("destructive", &["select app.purge()"], Orders),
    c("destructive", &["select app.purge_pl()"], Orders),
    c("destructive", &["select * from app.purge_pl()"], Orders),
    c(
        "destructive",
        &["select app.dyn('delete from app.orders')"],
        Orders,
    ),
    c(
        "destructive",
        &["do $$ begin delete from app.orders; end $$"],
        Orders,
    ),
    c(
        "destructive",
        &["do $$ begin execute 'delete from app.orders'; end $$"],
        Orders,
    ),
    c(
        "destructive",
        &["select query_to_xml('delete from app.orders returning 1', true, true, '')"],
        Orders,
    ),
    c(
        "destructive",
        &[
            "create function app.t_wipe() returns trigger language plpgsql as $$ begin delete from app.orders; return null; end $$",
            "create trigger t_wipe after insert on app.notes for each statement execute function app.t_wipe()",
            "insert into app.notes values (1, 'x')",
        ],
        Orders,
    ),
    c(
        "destructive",
        &[
            "create rule r_wipe as on insert to app.notes do also delete from app.orders",
            "insert into app.notes values (1, 'x')",
        ],
        Orders,
    ),
    c(
        "destructive",
        &["alter table app.orders drop column note"],
        Orders,
    ),
    c(
        "destructive",
        &["alter table app.orders drop column note cascade"],
        Orders,
    ),
    c(
        "destructive",
        &["alter table app.orders alter column amount type text"],
        Orders,
    ),
    c(
        "destructive",
        &["alter table app.orders alter amount set data type bigint using 0"],
        Orders,
    ),
    c(
        "destructive",
        &["alter table app.orders rename to orders_old"],
        Orders,
    ),
    c(
        "destructive",
        &["alter table app.orders rename column note to note_old"],
        Orders,
    ),
    c("destructive", &["delete from users"], Users),
    c("destructive", &["update users set password = 'x'"], Users),
    c(
        "destructive",
        &["update users set password = 'x' where id = id"],
        Users,
    ),
    // ------------------------------------------------ privileges
    c(
        "privileges",
        &["grant select on secrets to public"],
        Privileges,
    ),
    c(
        "privileges",
        &["grant all on all tables in schema public to public"],
        Privileges,
    ),
    c(
        "privileges",
        &["alter default privileges grant select on tables to public"],
        Privileges,
    ),
    c("privileges", &["create role evil login"], Privileges),
    c(
        "privileges",
        &["alter role gatehouse_svc createrole"],
        Privileges,
    ),
    c(
        "privileges",
        &["select set_config('role', 'postgres', false)"],
        Privileges,
    ),
    c(
        "privileges",
        &["do $$ begin execute 'grant select on secrets to public'; end $$"],
        Privileges,
    ),
    c(
        "privileges",
        &["revoke select on secrets from gatehouse_svc"],
        Privileges,
    ),
];

fn setup(pg: &Postgres) {
    ok(&pg.psql_app(&["-v", "ON_ERROR_STOP=1", "-c", SETUP]));
    reset(pg);
    ok(&pg.psql_app(&["-v", "ON_ERROR_STOP=1", "-c", FUNCTIONS]));
}

const SETUP: &str = r#"
create schema app;
create schema auth;
create table secrets (k text, v text);
insert into secrets values ('root', 'S3CR3T-ROOT-5521');
create table auth.api_keys (k text);
insert into auth.api_keys values ('sk_live_ADV3RSARY');
create table app.notes (id int, body text);
create view app.v_secrets as select * from public.secrets;
create view app.v_v as select * from app.v_secrets;
"#;

/// Functions over the tables [`RESET`] makes (SQL bodies are checked at creation).
const FUNCTIONS: &str = r#"
create function app.peek() returns text language sql as $f$ select v from public.secrets limit 1 $f$;
create function app.peek_pl() returns text language plpgsql as $f$ begin return (select v from public.secrets limit 1); end $f$;
create function app.with_path() returns text language sql set search_path = auth as $f$ select k from api_keys limit 1 $f$;
create function app.purge() returns int language sql as $f$ delete from app.orders returning 1 $f$;
create function app.purge_pl() returns void language plpgsql as $f$ begin delete from app.orders; end $f$;
create function app.dyn(q text) returns void language plpgsql as $f$ begin execute q; end $f$;
create function app.dyn_read(q text) returns text language plpgsql as $f$ declare r text; begin execute q into r; return r; end $f$;
"#;

/// Puts every table the corpus may change back as it was.
const RESET: &str = r#"
drop table if exists app.orders cascade;
drop table if exists app.orders_old cascade;
create table app.orders (id int primary key, note text not null default 'n', amount int not null default 1);
insert into app.orders select g, 'n', g from generate_series(1, 2000) g;
drop table if exists users cascade;
create table users (id int primary key, email text, password text, card text);
insert into users values (1, 'ann@example.com', 'hunter2-PW-9931', '4539578763621486'), (2, 'bob@example.com', 'tr0ub4dor-PW-7710', '4539 5787 6362 1486');
create or replace view app.v_users as select id, password as p from users;
create or replace view app.v_secrets_free as select count(*) as n from app.orders;
drop table if exists app.copy_s, app.copy_t;
drop rule if exists r_wipe on app.notes;
drop trigger if exists t_wipe on app.notes;
delete from app.notes;
alter database app reset search_path;
alter role gatehouse_svc reset search_path;
alter role gatehouse_svc in database app reset search_path;
"#;

fn reset(pg: &Postgres) {
    ok(&pg.psql_app(&["-q", "-v", "ON_ERROR_STOP=1", "-c", RESET]));
}

/// A query run directly on the database (what it answers, or its error: a dropped
/// table is a finding, not a test failure).
fn direct(pg: &Postgres, sql: &str) -> String {
    support::all(&pg.psql_app(&["-At", "-c", sql]))
        .trim()
        .to_owned()
}

/// Runs a case's commands through the gateway; any statement held for approval is
/// denied at once. Returns everything the client printed.
fn run(h: &Harness, token: &str, sql: &[&str]) -> String {
    let mut cmd = h.psql_cmd(token);
    cmd.args(["-v", "VERBOSITY=verbose"]);
    for s in sql {
        cmd.args(["-c", s]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let reviewer = Reviewer {
        name: "bob@example.com".into(),
        groups: vec![
            "dba-oncall".into(),
            "security".into(),
            "sre-oncall".into(),
            "default".into(),
        ],
    };
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        for p in h
            .engine
            .approvals()
            .list()
            .into_iter()
            .filter(|p| p.waiting)
        {
            let _ =
                h.rt.block_on(h.engine.deny(&p.id, &reviewer, "adversarial corpus"));
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{sql:?} did not finish"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Binary COPY output is not UTF-8: compare what the client got, lossily.
    let mut raw = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut raw).unwrap();
    child.stderr.take().unwrap().read_to_end(&mut raw).unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

/// Why the database side says the case got through, if it did.
fn judge(h: &Harness, j: Judge, out: &str) -> Option<String> {
    let leaked = |out: &str| {
        let digits: String = out.chars().filter(char::is_ascii_digit).collect();
        SECRETS
            .iter()
            .find(|s| out.contains(*s))
            .map(|s| format!("the client received {s}"))
            .or_else(|| {
                digits
                    .contains(CARD)
                    .then(|| "the client received the card number".to_owned())
            })
    };
    match j {
        Judge::Secret => leaked(out),
        Judge::SecretShows(shown) => leaked(out).or_else(|| {
            (!out.contains(shown)).then(|| format!("`{shown}` was masked or refused too"))
        }),
        Judge::Orders => {
            let got = direct(
                &h.pg,
                "select count(*) || '/' || sum(amount) || '/' || count(*) filter (where note = 'n') from app.orders",
            );
            (got != "2000/2001000/2000").then(|| format!("app.orders is now {got}"))
        }
        Judge::Users => {
            let got = direct(
                &h.pg,
                "select string_agg(id || ':' || password, ',' order by id) from users",
            );
            (got != "1:hunter2-PW-9931,2:tr0ub4dor-PW-7710").then(|| format!("users is now {got}"))
        }
        Judge::Privileges => {
            let got = direct(
                &h.pg,
                "select has_table_privilege('public', 'public.secrets', 'select') || '/' || \
                 (select count(*) from pg_roles where rolname = 'evil') || '/' || \
                 (select rolcreaterole from pg_roles where rolname = 'gatehouse_svc') || '/' || \
                 has_table_privilege('gatehouse_svc', 'public.secrets', 'select') || '/' || \
                 (select count(*) from pg_default_acl)",
            );
            (got != "false/0/false/true/0").then(|| format!("privileges are now {got}"))
        }
    }
}

#[test]
fn the_starter_policy_holds_against_the_adversarial_corpus() {
    let h = Harness::start_with(&starter(), support::Options::default(), setup);
    assert!(
        CORPUS.len() >= 150,
        "the corpus holds {} cases",
        CORPUS.len()
    );
    let token = h.token();
    let mut failures: Vec<String> = Vec::new();
    let mut per_class: Vec<(&str, usize, usize)> = Vec::new();
    for case in CORPUS {
        let out = run(&h, &token, case.sql);
        let verdict = judge(&h, case.judge, &out);
        if std::env::var_os("ADVERSARIAL_VERBOSE").is_some() {
            eprintln!("[{}] {:?}: {verdict:?}\n{out}", case.class, case.sql);
        }
        match per_class.iter_mut().find(|(c, ..)| *c == case.class) {
            Some(e) => {
                e.1 += 1;
                e.2 += usize::from(verdict.is_some());
            }
            None => per_class.push((case.class, 1, usize::from(verdict.is_some()))),
        }
        if let Some(why) = verdict {
            failures.push(format!("[{}] {:?}: {why}\n{out}", case.class, case.sql));
        }
        reset(&h.pg);
        // A statement the client left held would run if approved later: none is.
        assert!(
            !h.engine.approvals().list().iter().any(|p| p.waiting),
            "{:?} left an approval waiting",
            case.sql
        );
    }
    let summary: Vec<String> = per_class
        .iter()
        .map(|(c, n, f)| format!("{c}: {f} of {n} got through"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} attempts got through ({})\n\n{}",
        failures.len(),
        CORPUS.len(),
        summary.join(", "),
        failures.join("\n")
    );
}
