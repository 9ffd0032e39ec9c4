\set VERBOSITY verbose
CREATE SCHEMA tx;
SET search_path = tx;
CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), placed timestamptz DEFAULT '2026-01-02 03:04:05+00');
CREATE INDEX ON orders (customer);
INSERT INTO orders (id, customer, amount) VALUES (1, 'alice', 10.50), (2, 'bob', 99.99), (3, 'carol', NULL);
INSERT INTO orders (id, customer) VALUES (1, 'dup');
UPDATE orders SET amount = amount * 2 WHERE id = 1 RETURNING id, amount;
DELETE FROM orders WHERE id = 3 RETURNING *;
ALTER TABLE orders ADD COLUMN note text DEFAULT 'n/a';
SELECT * FROM orders ORDER BY id;
WITH moved AS (UPDATE orders SET note = 'moved' WHERE id = 2 RETURNING id) SELECT count(*) FROM moved;
CREATE VIEW big_orders AS SELECT id, amount FROM orders WHERE amount > 50;
SELECT * FROM big_orders;
TRUNCATE orders;
SELECT count(*) FROM orders;
SELECT 1 \; SELECT 'two' AS second \; SELECT 3.0 AS third;
SET client_min_messages = warning;
DROP SCHEMA tx CASCADE;
