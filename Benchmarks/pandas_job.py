#!/usr/bin/env python3
"""The same job with pandas (vectorised check character), written to SQLite."""
import sys, sqlite3
import numpy as np, pandas as pd
data, db = sys.argv[1], sys.argv[2]
W = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]); C = np.array(list("10X98765432"))
roster = pd.read_csv(f"{data}/roster.csv", dtype=str)
df = pd.read_csv(f"{data}/claims.csv", dtype={"certno": str, "psn_no": str, "setl_id": str})
df = df.rename(columns={"setl_id": "settlement_id", "psn_no": "person_no", "certno": "id_number", "psn_name": "name",
                        "setl_time": "settled_at", "medfee_sumamt": "total_cost", "hifp_pay": "fund_pay", "psn_part_amt": "self_pay"})
ids = df["id_number"].str.upper()
ok = ids.str.len() == 18
digits = np.array([list(s[:17]) if len(s) == 18 else list("0" * 17) for s in ids]).astype(int)
check = C[(digits * W).sum(axis=1) % 11]
ok &= (check == ids.str[17].to_numpy())
df["settled_at"] = pd.to_datetime(df["settled_at"], format="%Y-%m-%d %H:%M:%S", errors="coerce")
ok &= df["settled_at"].notna()
good = df[ok]
con = sqlite3.connect(db)
con.execute("CREATE TABLE claims (settlement_id TEXT PRIMARY KEY, person_no TEXT, id_number TEXT, name TEXT, med_type TEXT, settled_at TEXT, total_cost REAL, fund_pay REAL, self_pay REAL)")
good.to_sql("claims", con, if_exists="append", index=False)
roster.to_sql("roster", con, index=False)
alerts = good[good["self_pay"] >= 20000].merge(roster, on="id_number")
alerts[["settlement_id", "household_id"]].to_sql("alerts", con, index=False)
print(len(good), "stored,", int((~ok).sum()), "rejected,", len(alerts), "alerts")
