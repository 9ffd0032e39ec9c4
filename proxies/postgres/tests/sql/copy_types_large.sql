\set VERBOSITY verbose
CREATE SCHEMA tx;
SET search_path = tx;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE kinds (
  id serial PRIMARY KEY, b bool, i2 smallint, i8 bigint, f4 real, f8 double precision, n numeric,
  t text, vc varchar(10), ch char(3), by bytea, d date, ts timestamp, tz timestamptz, iv interval,
  u uuid, j json, jb jsonb, arr int[], tarr text[], ip inet, pt point, r int4range, m mood, x xml
);
INSERT INTO kinds (b, i2, i8, f4, f8, n, t, vc, ch, by, d, ts, tz, iv, u, j, jb, arr, tarr, ip, pt, r, m, x) VALUES
  (true, -32768, 9223372036854775807, 1.5, 3.141592653589793, 12345678901234567890.123456789, 'héllo wörld ✓', 'short', 'ab', '\xdeadbeef', '2026-02-28', '2026-01-01 12:34:56.789', '2026-01-01 12:34:56+02', '1 year 2 mons 3 days 04:05:06', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2, null]}', '{"b": {"c": true}}', '{1,2,NULL,4}', '{"x y","z\"q"}', '10.1.2.3/24', '(1.5,-2)', '[1,10)', 'happy', '<a>b</a>'),
  (NULL, NULL, NULL, 'NaN', '-Infinity', 'NaN', '', NULL, NULL, '', NULL, 'infinity', '-infinity', NULL, NULL, 'null', '[]', '{}', '{}', '::1', NULL, 'empty', 'sad', NULL);
SELECT * FROM kinds ORDER BY id;
\x on
SELECT * FROM kinds WHERE id = 1;
\x off
COPY kinds (id, t, arr) TO STDOUT;
COPY kinds (id, t, arr) TO STDOUT WITH (FORMAT csv, HEADER);
CREATE TABLE c (a int, b text);
COPY c FROM STDIN;
1	one
2	two
\N	null-a
\.
COPY c FROM STDIN WITH (FORMAT csv);
3,"quoted, comma"
4,
\.
SELECT * FROM c ORDER BY a NULLS FIRST;
COPY c FROM STDIN;
not-a-number	x
\.
SELECT count(*) FROM c;
SELECT g, md5(g::text), repeat('x', g % 50) FROM generate_series(1, 20000) g;
SELECT string_agg(md5(g::text), '') AS long_value FROM generate_series(1, 3000) g;
DECLARE cur CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 10) g;
FETCH 3 FROM cur;
FETCH ALL FROM cur;
CLOSE cur;
PREPARE p(int) AS SELECT $1 * 2 AS doubled;
EXECUTE p(21);
DEALLOCATE p;
SET client_min_messages = warning;
DROP SCHEMA tx CASCADE;
