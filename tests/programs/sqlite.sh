#!/usr/bin/env bash
# The sqlite3 shell running a generated SQL script on a database file: 300k
# single-row INSERTs in one transaction (each statement parsed and prepared),
# two indexes, then aggregates, a join, window functions, big sorts, updates,
# deletes, an integrity check and VACUUM. The page cache (64 MiB) and the
# sorters allocate through malloc. Usage: sqlite.sh LIB SQLITE3
set -euo pipefail
# shellcheck source=compare.sh
source "$(dirname "$0")/compare.sh"
lib=$(realpath "$1") sqlite=$2
rows=$(by_size 300000 20000)

# The script is generated once, before either run, by a plain awk.
script=$program_work/workload.sql
awk -v rows="$rows" 'BEGIN {
  print "PRAGMA cache_size = -65536;"
  print "CREATE TABLE category(name TEXT PRIMARY KEY, label TEXT NOT NULL);"
  for (c = 0; c < 40; c++) printf "INSERT INTO category VALUES (%cc%d%c, %cgroup %d%c);\n", 39, c, 39, 39, c % 7, 39
  print "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, category TEXT, price INTEGER, qty INTEGER, note TEXT);"
  print "BEGIN;"
  x = 20240601
  for (i = 1; i <= rows; i++) {
    x = (x * 1103515245 + 12345) % 2147483648
    note = substr("the quick brown fox jumps over the lazy dog and keeps running far away", 1 + x % 17, 5 + x % 53)
    printf "INSERT INTO item VALUES (%d, %cn%d%c, %cc%d%c, %d, %d, %c%s %d%c);\n", i, 39, x % 5003, 39, 39, x % 41, 39, x % 100000, x % 97, 39, note, x % 1000, 39
  }
  print "COMMIT;"
}' >"$script"
cat >>"$script" <<'EOF'
CREATE INDEX item_category_price ON item(category, price);
CREATE INDEX item_name ON item(name);
SELECT 'totals', count(*), sum(price), min(price), max(price), sum(length(note)), count(DISTINCT name) FROM item;
SELECT 'by category', category, count(*), sum(price * qty), printf('%.3f', avg(price)) FROM item GROUP BY category ORDER BY category;
SELECT 'top names', name, count(*), max(price) FROM item GROUP BY name ORDER BY count(*) DESC, name LIMIT 10;
SELECT 'join', c.label, count(*), sum(i.qty) FROM item i JOIN category c ON c.name = i.category GROUP BY c.label ORDER BY c.label;
SELECT 'no category', count(*) FROM item WHERE category NOT IN (SELECT name FROM category);
SELECT 'top 3 per category', category, group_concat(id, ',') FROM (
  SELECT category, id, rank() OVER (PARTITION BY category ORDER BY price DESC, id) AS r FROM item
) WHERE r <= 3 GROUP BY category ORDER BY category LIMIT 8;
SELECT 'sorted by note', sum(id % 1000 * (rn % 1000)) FROM (SELECT id, row_number() OVER (ORDER BY note, id) AS rn FROM item);
SELECT 'running total', max(t) FROM (SELECT sum(price) OVER (ORDER BY name, id ROWS BETWEEN 100 PRECEDING AND CURRENT ROW) AS t FROM item);
SELECT 'concat lengths', category, length(group_concat(name, ',')) FROM (SELECT category, name FROM item ORDER BY id) GROUP BY category ORDER BY category LIMIT 5;
SELECT 'json', json_array(count(*), sum(qty)), json_object('min', min(name), 'max', max(name)) FROM item WHERE price < 1000;
WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 1000)
  SELECT 'recursive', count(*), sum(k), group_concat(k % 10, '') LIKE '1234567890%' FROM n;
UPDATE item SET price = price + 1, note = upper(note) WHERE category IN ('c1', 'c2', 'c3');
SELECT 'updated', changes();
DELETE FROM item WHERE id % 7 = 0;
SELECT 'deleted', changes();
SELECT 'after', count(*), sum(price), sum(length(note)), count(DISTINCT category) FROM item;
PRAGMA integrity_check;
VACUUM;
SELECT 'after vacuum', count(*), sum(qty) FROM item WHERE category = 'c5';
EOF

workload() {
  "$sqlite" -bail items.db <"$script"
  echo "sqlite3: exit 0"
}
compare_runs "$lib" workload
