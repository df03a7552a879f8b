"""Adds N synthetic cases (with their alerts) to a store that already holds a county's roster,
so the inbox can be load-tested at a province's scale: cases point at real households and
villages of the roster, spread over its townships, with a realistic mix of open, overdue and
closed cases and one to three alerts each.

    python3 Benchmarks/seed_cases.py STORE.sqlite N
"""
import random
import sqlite3
import sys

RULES = [
    ("large_medical_self_pay", "大额医疗自付", "high"),
    ("dibao_stopped", "低保停发", "high"),
    ("disability_new", "新增残疾", "medium"),
    ("water_cutoff", "长期停水", "medium"),
    ("power_drop", "用电量骤降", "low"),
    ("tekun_new", "新增特困", "high"),
]


def main(path, n):
    rng = random.Random(20261123)
    db = sqlite3.connect(path)
    households = db.execute(
        "SELECT household_id, village_code FROM rec_household WHERE village_code IS NOT NULL").fetchall()
    if not households:
        sys.exit("the store has no roster (rec_household): run `hubd demo --db …` first")
    run = db.execute("SELECT max(id) FROM runs").fetchone()[0] or 0
    db.execute("BEGIN")
    now = "2026-11-01T08:00:00Z"
    periods = ["2026-%02d" % m for m in range(1, 11)]
    cases = []
    for i in range(n):
        hid, village = households[i % len(households)]
        period = periods[(i // len(households)) % len(periods)]
        r = rng.random()
        status, outcome, closed = ("open", None, None) if r < 0.7 else ("closed", "no_risk", "2026-11-10T09:00:00Z")
        day = 1 + rng.randrange(60)
        deadline = "2026-%02d-%02d" % (10 + day // 31, 1 + day % 28)
        sev = rng.choice(["high", "medium", "low"])
        cases.append(("bench-%d" % i, period, hid, "household", hid, village[:9], village, sev, status, now, deadline, outcome, closed))
    db.executemany("""INSERT INTO cases (case_key, period, household_id, subject_kind, subject_id, township_code, village_code,
                      severity, status, opened_at, deadline, outcome, closed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)""", cases)
    first = db.execute("SELECT min(id) FROM cases WHERE case_key = 'bench-0'").fetchone()[0]
    alerts = []
    for i, c in enumerate(cases):
        for rule, title, sev in rng.sample(RULES, 1 + rng.randrange(3)):
            alerts.append((rule, title, sev, "household", c[2] + "#" + str(i), c[1], c[2], c[5], c[6],
                           "模拟预警", "[]", "bench", "", first + i, now, now))
    db.executemany("""INSERT INTO alerts (rule, title, severity, subject_kind, subject_id, period, household_id, township_code,
                      village_code, message, evidence, rule_version, mapping_versions, case_id, raised_at, updated_at)
                      VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""", alerts)
    db.commit()
    total = db.execute("SELECT count(*) FROM cases").fetchone()[0]
    print(f"{n} cases and {len(alerts)} alerts added; the store now holds {total} cases "
          f"in {db.execute('SELECT count(DISTINCT township_code) FROM cases').fetchone()[0]} townships")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
