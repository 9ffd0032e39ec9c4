-- A DBA's and a migration tool's day: DDL and utility statements of most kinds
-- PostgreSQL has, psql meta-commands, COPY both ways, large objects, notices and
-- errors. Run by psql -a directly and through the gateway; the outputs must be
-- byte-identical, and every statement the server accepts must be classified.
-- Idempotent: it removes what it made (the schema dba_ws is left for pg_dump).
\set VERBOSITY default
drop schema if exists dba_ws cascade;
drop database if exists dba_scratch;
reset all;
show intervalstyle;
show datestyle;
show timezone;
select interval '1 year 2 months 3 days 04:05:06.5', date '2026-12-07', timestamptz '2026-12-07 12:00:00+00';

create schema dba_ws;
set search_path = dba_ws, public;
comment on schema dba_ws is 'the DBA workload';

-- types, domains, sequences
create type dba_ws.mood as enum ('sad', 'ok', 'happy');
alter type dba_ws.mood add value 'ecstatic' after 'happy';
alter type dba_ws.mood rename value 'sad' to 'blue';
create type dba_ws.pair as (a int, b text);
create type dba_ws.float_range as range (subtype = float8, subtype_diff = float8mi);
create domain dba_ws.email as text check (value ~ '@');
alter domain dba_ws.email set not null;
alter domain dba_ws.email add constraint email_len check (length(value) < 255) not valid;
alter domain dba_ws.email validate constraint email_len;
create sequence dba_ws.ticket_seq start 100 increment 5 cache 1;
alter sequence dba_ws.ticket_seq restart with 200;
select nextval('dba_ws.ticket_seq'), currval('dba_ws.ticket_seq');
select setval('dba_ws.ticket_seq', 500, false);

-- tables, constraints, partitions, inheritance
create table dba_ws.customers (
  id bigint generated always as identity primary key,
  email dba_ws.email unique,
  mood dba_ws.mood default 'ok',
  created timestamptz not null default now(),
  note text collate "C"
);
create table dba_ws.orders (
  id bigserial primary key,
  customer bigint not null references dba_ws.customers (id) on delete cascade deferrable initially deferred,
  amount numeric(12, 2) check (amount >= 0),
  placed date not null,
  tags text[] default '{}'
) with (fillfactor = 90);
create table dba_ws.events (at timestamptz not null, kind text, payload jsonb) partition by range (at);
create table dba_ws.events_2026 partition of dba_ws.events for values from ('2026-01-01') to ('2027-01-01');
create table dba_ws.events_default partition of dba_ws.events default;
create unlogged table dba_ws.scratch (k int, v text);
create table dba_ws.base (id int);
create table dba_ws.child (extra text) inherits (dba_ws.base);
create table dba_ws.like_orders (like dba_ws.orders including all);
alter table dba_ws.orders add column status text not null default 'new';
alter table dba_ws.orders alter column status set default 'open';
alter table dba_ws.orders add constraint status_known check (status in ('open', 'new', 'paid')) not valid;
alter table dba_ws.orders validate constraint status_known;
alter table dba_ws.orders alter column tags set statistics 200;
alter table dba_ws.orders alter column amount set storage main;
alter table dba_ws.orders set (autovacuum_vacuum_scale_factor = 0.05);
alter table dba_ws.orders reset (autovacuum_vacuum_scale_factor);
alter table dba_ws.orders cluster on orders_pkey;
alter table dba_ws.orders replica identity full;
alter table dba_ws.orders enable row level security;
alter table dba_ws.orders force row level security;
alter table dba_ws.orders no force row level security;
alter table dba_ws.scratch set logged;
alter table dba_ws.scratch rename column v to val;
alter table dba_ws.scratch rename to scratch2;
alter table if exists dba_ws.missing add column x int;
alter table dba_ws.events detach partition dba_ws.events_default;
alter table dba_ws.events attach partition dba_ws.events_default default;
alter table dba_ws.like_orders set schema public;
alter table public.like_orders set schema dba_ws;
alter table dba_ws.child no inherit dba_ws.base;
alter table dba_ws.child inherit dba_ws.base;

-- indexes
create index orders_customer_idx on dba_ws.orders (customer);
create index concurrently orders_placed_idx on dba_ws.orders using brin (placed);
create unique index customers_email_lower on dba_ws.customers (lower(email)) where email is not null;
create index orders_tags_idx on dba_ws.orders using gin (tags) with (fastupdate = off);
create index events_at_idx on dba_ws.events (at);
alter index dba_ws.orders_customer_idx rename to orders_by_customer;
alter index dba_ws.orders_by_customer set (fillfactor = 80);
reindex index dba_ws.orders_by_customer;
reindex table concurrently dba_ws.orders;

-- data: insert, upsert, update, delete, merge, copy
insert into dba_ws.customers (email, mood, note) values ('a@x', 'happy', 'first'), ('b@x', default, null), ('c@x', 'blue', 'third') returning id, email;
insert into dba_ws.customers (email) values ('a@x') on conflict (email) do update set note = 'again' returning note;
insert into dba_ws.customers overriding system value values (100, 'z@x', 'ok', '2026-01-01', 'explicit id');
insert into dba_ws.orders (customer, amount, placed, tags) select c.id, g * 1.5, date '2026-01-01' + g, array['t' || g] from dba_ws.customers c, generate_series(1, 5) g;
update dba_ws.orders set status = 'paid' where amount > 5 returning id, status;
update dba_ws.orders o set amount = amount + 1 from dba_ws.customers c where c.id = o.customer and c.mood = 'happy';
delete from dba_ws.orders where placed < date '2026-01-03' returning id;
merge into dba_ws.customers t using (values ('d@x', 'new one')) s(email, note) on t.email = s.email
  when matched then update set note = s.note
  when not matched then insert (email, note) values (s.email, s.note);
copy dba_ws.scratch2 (k, val) from stdin with (format csv, header true);
k,val
1,one
2,"two, quoted"
3,
\.
copy dba_ws.scratch2 to stdout with (format csv, header true, force_quote (val));
copy (select id, email from dba_ws.customers order by id) to stdout;
\copy dba_ws.scratch2 from stdin
4	four
\.
\copy (select * from dba_ws.scratch2 order by k) to stdout
insert into dba_ws.events values ('2026-05-01', 'login', '{"user": "a", "ok": true}'), ('2030-01-01', 'future', null);
select kind, payload ->> 'user' as u, payload @> '{"ok": true}' as ok from dba_ws.events order by at;
select tableoid::regclass, count(*) from dba_ws.events group by 1 order by 1;

-- views, materialized views, rules, policies
create view dba_ws.open_orders with (security_barrier) as select id, customer, amount from dba_ws.orders where status <> 'paid' with local check option;
create or replace view dba_ws.customer_totals as select c.email, sum(o.amount) as total from dba_ws.customers c left join dba_ws.orders o on o.customer = c.id group by c.email;
create materialized view dba_ws.daily as select placed, count(*) as n from dba_ws.orders group by placed with data;
create unique index daily_placed on dba_ws.daily (placed);
refresh materialized view concurrently dba_ws.daily;
refresh materialized view dba_ws.daily with no data;
refresh materialized view dba_ws.daily;
alter materialized view dba_ws.daily rename to per_day;
alter view dba_ws.open_orders set (security_barrier = false);
alter view dba_ws.customer_totals alter column total set default 0;
create rule no_delete_events as on delete to dba_ws.events_2026 do instead nothing;
alter rule no_delete_events on dba_ws.events_2026 rename to keep_events;
create policy own_orders on dba_ws.orders for select to public using (customer > 0);
alter policy own_orders on dba_ws.orders using (customer >= 0);
select * from dba_ws.customer_totals order by email;
select * from dba_ws.per_day order by placed;

-- functions, procedures, triggers, aggregates, operators, casts
create function dba_ws.touch() returns trigger language plpgsql as $$
begin
  new.note := coalesce(new.note, '') || '*';
  return new;
end $$;
create trigger customers_touch before update on dba_ws.customers for each row when (old.* is distinct from new.*) execute function dba_ws.touch();
alter trigger customers_touch on dba_ws.customers rename to touch_customers;
alter table dba_ws.customers disable trigger touch_customers;
alter table dba_ws.customers enable trigger touch_customers;
create function dba_ws.add(a int, b int default 1) returns int language sql immutable parallel safe return a + b;
create or replace function dba_ws.order_count(c bigint) returns bigint language sql stable as 'select count(*) from dba_ws.orders where customer = c';
create procedure dba_ws.archive(before date) language sql as $$ delete from dba_ws.orders where placed < before $$;
call dba_ws.archive('2026-01-04');
alter function dba_ws.add(int, int) rename to plus;
alter function dba_ws.plus(int, int) set search_path = pg_catalog;
alter function dba_ws.plus(int, int) cost 5;
alter procedure dba_ws.archive(date) rename to archive_before;
create aggregate dba_ws.product(int) (sfunc = int4mul, stype = int, initcond = '1');
create operator dba_ws.### (leftarg = int, rightarg = int, function = int4pl, commutator = operator(dba_ws.###));
select dba_ws.plus(2, 3), dba_ws.product(x) from generate_series(1, 5) x;
select 2 operator(dba_ws.###) 3;
create cast (dba_ws.pair as text) with inout;
create conversion dba_ws.my_latin1 for 'LATIN1' to 'UTF8' from iso8859_1_to_utf8;
create collation dba_ws.german (provider = libc, locale = 'C');
create text search configuration dba_ws.simple_cfg (copy = pg_catalog.simple);
alter text search configuration dba_ws.simple_cfg alter mapping for word with simple;
select to_tsvector('dba_ws.simple_cfg', 'The quick brown fox');
update dba_ws.customers set mood = 'ecstatic' where email = 'c@x' returning note;
do $$ begin raise notice 'notice from a DO block: %', 42; raise warning 'a warning'; end $$;
select dba_ws.order_count(1);

-- comments, security labels, ownership, privileges
comment on table dba_ws.orders is 'orders of the workload';
comment on column dba_ws.orders.amount is 'in cents? no: in units';
comment on function dba_ws.plus(int, int) is 'adds';
comment on index dba_ws.orders_by_customer is null;
alter table dba_ws.orders owner to current_user;
grant select, insert on dba_ws.orders to public;
grant usage on schema dba_ws to public;
grant execute on function dba_ws.plus(int, int) to public;
grant select (email) on dba_ws.customers to public;
revoke insert on dba_ws.orders from public;
revoke all on function dba_ws.plus(int, int) from public;
alter default privileges in schema dba_ws grant select on tables to public;
alter default privileges in schema dba_ws revoke select on tables from public;
alter default privileges for role current_user grant usage on sequences to public;
alter default privileges for role current_user revoke usage on sequences from public;
create role dba_ws_reader;
alter role current_user set work_mem = '8MB';
alter role current_user reset work_mem;
alter database app set default_statistics_target = 120;
alter database app reset default_statistics_target;
reassign owned by dba_ws_nobody to current_user;
security label on table dba_ws.orders is 'secret';

-- sessions and transactions
begin isolation level repeatable read read only;
set local statement_timeout = '5s';
select count(*) from dba_ws.orders;
savepoint a;
select 1 / 0;
rollback to savepoint a;
release savepoint a;
commit;
start transaction;
set constraints all deferred;
insert into dba_ws.orders (customer, amount, placed) values (1, 1, '2026-02-02');
prepare transaction 'dba_ws_tx';
begin;
lock table dba_ws.orders in share row exclusive mode nowait;
declare c scroll cursor with hold for select id from dba_ws.orders order by id;
fetch 2 from c;
move last in c;
fetch prior from c;
commit;
close c;
prepare q(int) as select $1 + 1;
execute q(41);
deallocate q;
listen dba_channel;
unlisten *;
-- (a notification to this session would name its process id, which differs)
notify dba_channel, 'payload';
discard temp;
set session characteristics as transaction isolation level read committed;
set time zone 'UTC';
set datestyle = iso, mdy;
reset datestyle;
show all \g /dev/null
select set_config('application_name', 'transparency', false);

-- maintenance
vacuum (analyze, verbose false) dba_ws.orders;
analyze dba_ws.customers (email);
cluster dba_ws.orders using orders_pkey;
checkpoint;
explain (costs off) select * from dba_ws.orders where customer = 1;
explain (costs off, format json) update dba_ws.orders set amount = 0 where false;
select pg_size_pretty(pg_total_relation_size('dba_ws.orders')) is not null as sized;

-- psql meta-commands (their catalog queries go through the gateway too)
\dn dba_ws
\dt dba_ws.*
\d dba_ws.orders
\d+ dba_ws.customers
\dv dba_ws.*
\dm dba_ws.*
\di dba_ws.*
\ds dba_ws.*
\df dba_ws.*
\dT dba_ws.*
\dD dba_ws.*
\dp dba_ws.*
\ddp
\dx
\dy
\dF dba_ws.*
\dc dba_ws.*
\dO dba_ws.*
\do dba_ws.*
\dP dba_ws.*
\sf dba_ws.touch
\x on
select 1 as one, 'two' as two;
\x off

-- large objects (the function-call protocol)
\o /dev/null
\lo_import :lofile
\o
select length(lo_get(:LASTOID)) > 0 as imported;
\lo_export :LASTOID :loout
\o /dev/null
\lo_unlink :LASTOID
\o

-- errors are the server's own
select * from dba_ws.no_such_table;
create table dba_ws.orders (id int);
insert into dba_ws.customers (email) values ('no-at-sign');
alter table dba_ws.orders alter column amount type int using amount::int, add column;
drop database dba_scratch;
create database dba_scratch;
drop role dba_ws_reader;

-- clean-up (the schema stays for pg_dump)
rollback prepared 'dba_ws_tx';
drop rule keep_events on dba_ws.events_2026;
drop policy own_orders on dba_ws.orders;
drop trigger touch_customers on dba_ws.customers;
drop text search configuration dba_ws.simple_cfg;
drop collation dba_ws.german;
drop conversion dba_ws.my_latin1;
drop cast (dba_ws.pair as text);
drop operator dba_ws.### (int, int);
drop aggregate dba_ws.product(int);
drop procedure dba_ws.archive_before(date);
drop table dba_ws.scratch2;
truncate dba_ws.events restart identity cascade;
drop index concurrently dba_ws.orders_placed_idx;
drop owned by dba_ws_nobody;
reset all;
