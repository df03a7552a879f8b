#!/usr/bin/env python3
"""Deterministic benchmark data: N medical-claim rows (national field names, ~100 bytes each,
1% invalid ID numbers) and a roster of P persons, some of whom have large claims."""
import random, sys, os
N = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
P = int(sys.argv[3]) if len(sys.argv) > 3 else 300_000
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]; C = "10X98765432"
rng = random.Random(8)
def rid(i):
    s17 = "411081" + f"{1940 + i % 60:04d}{1 + i % 12:02d}{1 + i % 28:02d}" + f"{i % 997:03d}"
    return s17 + C[sum(int(a) * w for a, w in zip(s17, W)) % 11]
persons = [rid(i) for i in range(P)]
with open(os.path.join(out, "roster.csv"), "w") as f:
    f.write("id_number,household_id,name\n")
    for i, p in enumerate(persons):
        f.write(f"{p},H{i // 3:07d},P{i}\n")
with open(os.path.join(out, "claims.csv"), "w") as f:
    f.write("setl_id,psn_no,certno,psn_name,med_type,setl_time,medfee_sumamt,hifp_pay,psn_part_amt\n")
    for i in range(N):
        who = persons[rng.randrange(P)] if rng.random() < 0.3 else rid(P + rng.randrange(5_000_000))
        if rng.random() < 0.01: who = who[:-1] + ("0" if who[-1] != "0" else "1")
        total = rng.randrange(100_00, 200_000_00) / 100
        self_pay = round(total * rng.uniform(0.05, 0.4), 2)
        f.write(f"S{i:09d},{rng.randrange(10**15, 10**16)},{who},N{i},21,2026-10-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00,"
                f"{total:.2f},{total - self_pay:.2f},{self_pay:.2f}\n")
print(f"{out}: {N} claims, {P} persons")
