-- The PostgreSQL side of seed_cases.py: adds :n synthetic cases (with one to three alerts each)
-- to a store that already holds a county's roster, in SQL on the server, so a province's scale
-- (millions of cases) is seeded in minutes. Same shape as seed_cases.py: cases point at real
-- households and villages of the roster, spread over its townships and ten months, 70% open.
--   psql URL -v n=5000000 -f Benchmarks/seed_cases.sql
\set ON_ERROR_STOP on
BEGIN;
SET LOCAL hub.bulk = '1';
CREATE TEMP TABLE seed_households ON COMMIT DROP AS
    SELECT household_id, village_code, (row_number() OVER (ORDER BY _id) - 1)::bigint AS k
    FROM rec_household WHERE village_code IS NOT NULL;
CREATE INDEX ON seed_households (k);
INSERT INTO cases (case_key, period, household_id, subject_kind, subject_id, township_code, village_code,
                   severity, status, opened_at, deadline, outcome, closed_at)
SELECT 'bench-' || i, '2026-' || lpad((1 + (i / t.n) % 10)::text, 2, '0'), h.household_id, 'household', h.household_id,
       substr(h.village_code, 1, 9), h.village_code, (ARRAY['high', 'medium', 'low'])[1 + (i * 7 % 3)::int],
       CASE WHEN (i * 2654435761 % 10) < 7 THEN 'open' ELSE 'closed' END, '2026-11-01T08:00:00Z',
       to_char(date '2026-10-01' + (i * 40503 % 60)::int, 'YYYY-MM-DD'),
       CASE WHEN (i * 2654435761 % 10) < 7 THEN NULL ELSE 'no_risk' END,
       CASE WHEN (i * 2654435761 % 10) < 7 THEN NULL ELSE '2026-11-10T09:00:00Z' END
FROM generate_series(0::bigint, :n - 1) AS i
CROSS JOIN (SELECT count(*) AS n FROM seed_households) t
JOIN seed_households h ON h.k = i % t.n;
INSERT INTO alerts (rule, title, severity, subject_kind, subject_id, period, household_id, township_code, village_code,
                    message, evidence, rule_version, mapping_versions, case_id, raised_at, updated_at)
SELECT r.rule, r.title, r.severity, 'household', c.household_id || '#' || c.id, c.period, c.household_id, c.township_code,
       c.village_code, '模拟预警', '[]', 'bench', '', c.id, c.opened_at, c.opened_at
FROM cases c
CROSS JOIN LATERAL generate_series(0, (c.id % 3)::int) AS g
JOIN (VALUES (0, 'large_medical_self_pay', '大额医疗自付', 'high'), (1, 'dibao_stopped', '低保停发', 'high'),
             (2, 'disability_new', '新增残疾', 'medium'), (3, 'water_cutoff', '长期停水', 'medium'),
             (4, 'power_drop', '用电量骤降', 'low'), (5, 'tekun_new', '新增特困', 'high')) AS r(k, rule, title, severity)
  ON r.k = (c.id + g * 2) % 6
WHERE c.case_key LIKE 'bench-%';
UPDATE store_versions SET n = n + 1 WHERE name = 'cases';
COMMIT;
-- What autovacuum does to a table after bulk inserts (PostgreSQL 13 and later): statistics and
-- the visibility map, without which the inbox's counts read every row's heap page.
VACUUM (ANALYZE) cases;
VACUUM (ANALYZE) alerts;
SELECT count(*) AS cases, count(DISTINCT township_code) AS townships FROM cases \gset
\echo :cases cases in :townships townships
