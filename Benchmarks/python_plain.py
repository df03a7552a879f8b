#!/usr/bin/env python3
"""The same job in plain Python: csv + sqlite3 — rename, parse the date, check the ID's check
character, keep or reject, store with a key, join large claims with the roster."""
import csv, sqlite3, sys, datetime
data, db = sys.argv[1], sys.argv[2]
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]; C = "10X98765432"
con = sqlite3.connect(db)
con.execute("PRAGMA journal_mode=WAL")
con.execute("CREATE TABLE roster (id_number TEXT PRIMARY KEY, household_id TEXT)")
with open(f"{data}/roster.csv") as f:
    r = csv.reader(f); next(r)
    con.executemany("INSERT INTO roster VALUES (?, ?)", ((row[0], row[1]) for row in r))
con.execute("CREATE TABLE claims (settlement_id TEXT PRIMARY KEY, person_no TEXT, id_number TEXT, name TEXT, med_type TEXT, settled_at TEXT, total_cost REAL, fund_pay REAL, self_pay REAL)")
bad = 0
def rows():
    global bad
    with open(f"{data}/claims.csv") as f:
        r = csv.reader(f); next(r)
        for row in r:
            idn = row[2].upper()
            if len(idn) != 18 or C[sum(int(a) * w for a, w in zip(idn[:17], W)) % 11] != idn[17]:
                bad += 1; continue
            try: t = datetime.datetime.strptime(row[5], "%Y-%m-%d %H:%M:%S").isoformat(sep=" ")
            except ValueError: bad += 1; continue
            yield (row[0], row[1], idn, row[3], row[4], t, float(row[6]), float(row[7]), float(row[8]))
con.executemany("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(settlement_id) DO UPDATE SET self_pay = excluded.self_pay", rows())
n = con.execute("CREATE TABLE alerts AS SELECT c.settlement_id, r.household_id FROM claims c JOIN roster r ON r.id_number = c.id_number WHERE c.self_pay >= 20000").rowcount
con.commit()
print(con.execute("SELECT count(*) FROM claims").fetchone()[0], "stored,", bad, "rejected,", con.execute("SELECT count(*) FROM alerts").fetchone()[0], "alerts")
