#!/usr/bin/env python3
"""Writes Mappings/samples/yibao_setl_202610.csv: a small 医保 settlement export in the shape
departments really send (GB18030, a title row above the header, a 合计 line at the end), with
known good and bad rows. Deterministic; the tests read the same file."""
import random, sys, os

W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
C = "10X98765432"
def check(s17): return C[sum(int(a) * w for a, w in zip(s17, W)) % 11]
def rid(addr, y, m, d, seq):
    s17 = f"{addr}{y:04d}{m:02d}{d:02d}{seq:03d}"
    return s17 + check(s17)

rng = random.Random(20261001)
surn = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
given = "秀英桂英秀兰玉兰建华建国志强文明海燕国强春梅红霞丽娟明亮"
hosp = ["禹州市人民医院", "禹州市中医院", "许昌市中心医院", "河南省人民医院", "郑州大学第一附属医院"]
rows = []
for i in range(40):
    sex_seq = rng.randint(1, 999)
    idn = rid("411081", rng.randint(1940, 2010), rng.randint(1, 12), rng.randint(1, 28), sex_seq)
    total = rng.randint(50000_00, 180000_00) / 100
    fund = round(total * rng.uniform(0.45, 0.7), 2)
    ill = round(total * rng.uniform(0.0, 0.15), 2)
    aid = round(total * rng.uniform(0.0, 0.05), 2)
    self_pay = round(total - fund - ill - aid, 2)
    day = rng.randint(1, 25)
    rows.append({
        "setl": f"Y4110812026100{i:04d}", "psn": f"41108100{rng.randint(10**7, 10**8 - 1)}",
        "name": rng.choice(surn) + rng.choice(given[::2]) + rng.choice(given[1::2]), "id": idn,
        "type": "住院", "hosp": rng.choice(hosp), "in": f"2026-10-{day:02d}", "out": f"2026-10-{day + 3:02d}",
        "setl_time": f"2026-10-{day + 3:02d} {rng.randint(8, 17):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
        "total": f"{total:.2f}", "inscp": f"{total * 0.9:.2f}", "fund": f"{fund:.2f}", "ill": f"{ill:.2f}", "aid": f"{aid:.2f}",
        "fund_sum": f"{fund + ill + aid:.2f}", "self": f"{self_pay:.2f}", "region": "411081",
    })
# Variants that real exports carry and the mapping must accept.
rows[1]["id"] = "11010519491231002x"          # lowercase check character
legacy = rid("411023", 1956, 3, 8, 123)          # retired address code, 15-digit form
rows[2]["id"] = legacy[:6] + legacy[8:17]
rows[3]["id"] = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in rows[3]["id"])  # full-width digits
rows[4]["total"] = "68,213.40"; rows[4]["self"] = "12,006.20"
rows[5]["type"] = "门诊慢特病"
rows[6]["id"] = " " + rows[6]["id"][:6] + " " + rows[6]["id"][6:] + " "
# A reversal (冲销) of a settlement: negative amounts, left out by keep_if.
rev = dict(rows[7]); rev["setl"] = rows[7]["setl"] + "-R"; rev["total"] = "-" + rows[7]["total"]; rev["self"] = "-" + rows[7]["self"]
rows.append(rev)
# Bad rows, each with a known reason.
bad = []
b = dict(rows[8]); b["setl"] = "BAD-CHECK"; b["id"] = b["id"][:-1] + ("0" if b["id"][-1] != "0" else "1"); bad.append(b)
b = dict(rows[9]); b["setl"] = "BAD-DATE"; b["setl_time"] = "2026-13-45 10:00:00"; bad.append(b)
b = dict(rows[10]); b["setl"] = "BAD-NOID"; b["id"] = ""; bad.append(b)
b = dict(rows[11]); b["setl"] = "BAD-MONEY"; b["self"] = "约3万"; bad.append(b)
b = dict(rows[12]); b["setl"] = "BAD-TYPE"; b["type"] = "住院（转诊）"; bad.append(b)
b = dict(rows[13]); b["setl"] = "BAD-BIRTH"; b["id"] = rid("411081", 1980, 2, 30, 11); bad.append(b)
rows = rows[:20] + bad[:3] + rows[20:] + bad[3:]

hdr = ["结算ID", "人员编号", "人员姓名", "证件号码", "医疗类别", "定点医药机构名称", "入院日期", "出院日期", "结算时间",
       "医疗费总额", "符合政策范围金额", "基金支付总额", "统筹基金支出", "大病保险支出", "医疗救助基金支出", "个人负担总金额", "参保所属医保区划"]
def line(vals):
    out = []
    for v in vals:
        v = str(v)
        if any(c in v for c in ',"\n'): v = '"' + v.replace('"', '""') + '"'
        out.append(v)
    return ",".join(out)
text = ["禹州市医疗保障局 2026年10月 大额医疗费用结算明细（基数 5 万元以上）,,,,,,,,,,,,,,,,", line(hdr)]
for r in rows:
    text.append(line([r["setl"], r["psn"], r["name"], r["id"], r["type"], r["hosp"], r["in"], r["out"], r["setl_time"],
                      r["total"], r["inscp"], r["fund_sum"], r["fund"], r["ill"], r["aid"], r["self"], r["region"]]))
text.append(line(["合计", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", ""]))
out = os.path.join(os.path.dirname(__file__), "..", "Mappings", "samples", "yibao_setl_202610.csv")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "wb") as f:
    f.write(("\r\n".join(text) + "\r\n").encode("gb18030"))
print(f"{out}: {len(rows)} data rows ({len(bad)} bad, 1 reversal)")
