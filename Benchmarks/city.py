#!/usr/bin/env python3
"""A city's month end to end: `hubd simulate --counties N` serves one export per department for
the whole city (each county at --scale; 1.0 is a real county of 300,000 households), and K
`hubd serve` workers on one store pull every source of the month and evaluate the rules, as a
city's hub does on the day the departments deliver. Measured from the workers' start until every
source of the month has succeeded and every run's rules are evaluated; each worker's peak memory.

    python3 Benchmarks/city.py HUBD --postgres URL [--counties 10] [--scale 1.0] [--workers 1 2] [--sqlite]

--postgres: the server (PGPASSWORD in the environment); each measurement gets a schema of its
own, dropped afterwards. --sqlite also measures one worker on the embedded store. Called by
Benchmarks/city.sh, which builds hubd and starts a durable throwaway cluster."""
import argparse, datetime, json, os, re, shutil, socket, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("hubd"); ap.add_argument("--postgres", required=True)
ap.add_argument("--counties", type=int, default=10); ap.add_argument("--scale", type=float, default=1.0)
ap.add_argument("--workers", type=int, nargs="+", default=[1, 2]); ap.add_argument("--sqlite", action="store_true")
args = ap.parse_args()
HUBD = os.path.abspath(args.hubd)
work = tempfile.mkdtemp(prefix="hub-city-")

# Every source pulls daily at 00:00: all of them pull the month of yesterday (China time).
yesterday = datetime.datetime.utcnow() + datetime.timedelta(hours=8) - datetime.timedelta(days=1)
period = f"{yesterday.year:04d}-{yesterday.month:02d}"
mappings = os.path.join(work, "Mappings")
shutil.copytree("Mappings", mappings, ignore=shutil.ignore_patterns("examples", "samples"))
for f in os.listdir(mappings):
    if f.endswith(".yaml"):
        p = os.path.join(mappings, f)
        text = re.sub(r"(?m)^schedule:.*$", "schedule: daily at 00:00", open(p, encoding="utf-8").read())
        open(p, "w", encoding="utf-8").write(text)
sources = sorted(f[:-5] for f in os.listdir(mappings) if f.endswith(".yaml"))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

sim_dir = os.path.join(work, "sim")
t = time.time()
sim = subprocess.Popen([HUBD, "simulate", "--counties", str(args.counties), "--scale", str(args.scale), "--period", period, "--out", sim_dir],
                       stdout=subprocess.DEVNULL)
env_file = os.path.join(sim_dir, "feeds.env")
while not os.path.exists(env_file):
    if sim.poll() is not None: sys.exit("hubd simulate stopped")
    time.sleep(0.2)
truth = json.load(open(os.path.join(sim_dir, "ground-truth.json"), encoding="utf-8"))
area = (f"{args.counties} counties ({truth['county']}): {truth['townships']} townships, {truth['households']:,} households, "
        f"roster {truth['rosterHouseholds']:,} households / {truth['rosterPersons']:,} persons")
env = dict(os.environ)
for line in open(env_file, encoding="utf-8"):
    k, _, v = line.strip().partition("=")
    if k: env[k] = v
print(f"{area}\n(simulated in {time.time() - t:.0f} s; month {period}; {len(sources)} sources)")

def psql(location, sql):
    base, _, opts = location.partition("?")
    schema = [o.split("=", 1)[1] for o in opts.split("&") if o.startswith("schema=")]
    keep = "&".join(o for o in opts.split("&") if not o.startswith("schema="))
    cmd = ["psql", base.replace("postgres://", "postgresql://", 1) + ("?" + keep if keep else ""), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    if schema: cmd += ["-c", f"SET search_path TO {schema[0]}"]
    out = subprocess.run(cmd + ["-c", sql], capture_output=True, text=True)
    if out.returncode != 0: raise RuntimeError(out.stderr)
    return [r.split("|") for r in out.stdout.splitlines() if r]

def query(location, sql):
    if location.startswith("postgres"): return psql(location, sql)
    import sqlite3
    con = sqlite3.connect(location)
    try: return [[str(v) for v in r] for r in con.execute(sql)]
    finally: con.close()

def settled(db):
    try:
        done = {r[0] for r in query(db, f"SELECT source FROM runs WHERE status = 'succeeded' AND period = '{period}'")}
        pending = int(query(db, "SELECT count(*) FROM runs WHERE status = 'succeeded' AND CAST(rules_evaluated AS INTEGER) = 0")[0][0])
        return done >= set(sources) and pending == 0
    except Exception:
        return False

def peak_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"): return int(line.split()[1])
    except OSError: pass
    return 0

results = []
def measure(name, slug, db, workers):
    configs = []
    for w in range(workers):
        c = os.path.join(work, f"{slug}-{w}.yaml")
        open(c, "w").write(f"database: '{db}'\nmappings: {mappings}\narchive: {{ folder: {os.path.join(work, slug + '-archive')} }}\n"
                           f"web: {{ port: {free_port()} }}\nscheduler: {{ check_every_seconds: 1 }}\nlog_level: warning\n")
        configs.append(c)
    start = time.time()
    procs = [subprocess.Popen([HUBD, "serve", "--config", c], env=env, stdout=subprocess.DEVNULL, stderr=open(c + ".log", "w")) for c in configs]
    peaks = [0] * workers
    try:
        while not settled(db):
            for c, p in zip(configs, procs):
                if p.poll() is not None: sys.exit(f"{name}: a worker stopped:\n" + open(c + ".log", encoding="utf-8", errors="replace").read()[-3000:])
            peaks = [max(a, peak_kb(p.pid)) for a, p in zip(peaks, procs)]
            time.sleep(0.5)
        wall = time.time() - start
        peaks = [max(a, peak_kb(p.pid)) for a, p in zip(peaks, procs)]
    finally:
        for p in procs: p.terminate()
        for p in procs: p.wait(60)
    runs = query(db, f"SELECT source, rows_read, inserted, quarantined FROM runs WHERE status = 'succeeded' AND period = '{period}' ORDER BY source")
    rows = sum(int(r[1]) for r in runs)
    alerts = int(query(db, f"SELECT count(*) FROM alerts WHERE period = '{period}'")[0][0])
    cases = int(query(db, "SELECT count(*) FROM cases")[0][0])
    twice = query(db, f"SELECT source FROM runs WHERE status = 'succeeded' AND period = '{period}' GROUP BY source HAVING count(*) > 1")
    results.append((name, workers, wall, rows, alerts, cases, peaks, len(twice)))
    print(f"  {name}: {wall:.1f} s, {rows:,} rows read, {alerts:,} alerts, {cases:,} cases; peak MB per worker {[round(k / 1024) for k in peaks]}"
          + (f"; sources pulled twice: {twice}" if twice else ""), flush=True)

tag = f"city_{os.getpid()}"
try:
    for k in args.workers:
        db = args.postgres + ("&" if "?" in args.postgres else "?") + f"schema={tag}_{k}"
        measure(f"PostgreSQL, {k} worker(s)", f"pg{k}", db, k)
    if args.sqlite:
        measure("SQLite, 1 process", "sqlite", os.path.join(work, "city.sqlite"), 1)
    print(f"\n{args.counties} counties at scale {args.scale}: the month from the workers' start to every source pulled and every rule evaluated")
    print(f"{'store':<28} {'workers':>7} {'wall s':>8} {'rows read':>11} {'rows/s':>9} {'alerts':>8} {'cases':>8}  peak MB")
    for name, k, wall, rows, alerts, cases, peaks, _ in results:
        print(f"{name:<28} {k:>7} {wall:>8.1f} {rows:>11,} {rows / wall:>9,.0f} {alerts:>8,} {cases:>8,}  {'/'.join(str(round(p / 1024)) for p in peaks)}")
    same = len({(r[4], r[5]) for r in results}) == 1
    print("alerts and cases the same in every setup" if same else "ALERTS OR CASES DIFFER between setups")
    sys.exit(0 if same and not any(r[7] for r in results) else 1)
finally:
    sim.terminate(); sim.wait(30)
    for k in args.workers:
        try: psql(args.postgres, f"DROP SCHEMA IF EXISTS {tag}_{k} CASCADE")
        except Exception: pass
    shutil.rmtree(work, ignore_errors=True)
