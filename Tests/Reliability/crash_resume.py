#!/usr/bin/env python3
"""Crash-resume: kills `hubd serve` with SIGKILL at random points while it pulls the simulated
county's feeds and evaluates the rules, restarts it each time, and checks that the final store
equals one clean pull (`hubd demo`): the same records, quarantine, alerts and cases; nothing
lost, nothing doubled, no half-applied batch.

Usage: crash_resume.py HUBD [--kills 30] [--seed 7] [--scale 0.03] [--postgres URL --workers 2]   (from the repository root)
scripts/test.sh uses --scale 0.1: pulls are fast enough that at 0.03 few kills land mid-pull.
With --postgres (a server's address; PGPASSWORD in the environment) the store is a schema on that
server, and --workers N starts N `hubd serve` workers on it; each round kills one of them, the
others go on, and the killed one's work must be taken over: nothing lost, nothing doubled."""
import argparse, datetime, os, random, re, shutil, signal, socket, sqlite3, subprocess, sys, tempfile, time

ap = argparse.ArgumentParser()
ap.add_argument("hubd"); ap.add_argument("--kills", type=int, default=30); ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--scale", type=float, default=0.03)
ap.add_argument("--postgres"); ap.add_argument("--workers", type=int, default=1)
args = ap.parse_args()
HUBD = os.path.abspath(args.hubd)
rng = random.Random(args.seed)
work = tempfile.mkdtemp(prefix="hub-crash-")

# Every source pulls daily at 00:00, so all of them pull the month of yesterday (China time).
yesterday = datetime.datetime.utcnow() + datetime.timedelta(hours=8) - datetime.timedelta(days=1)
period = f"{yesterday.year:04d}-{yesterday.month:02d}"
mappings = os.path.join(work, "Mappings")
shutil.copytree("Mappings", mappings)
for f in os.listdir(mappings):
    if f.endswith(".yaml"):
        p = os.path.join(mappings, f)
        text = re.sub(r"(?m)^schedule:.*$", "schedule: daily at 00:00", open(p, encoding="utf-8").read())
        open(p, "w", encoding="utf-8").write(text)

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

sim_dir = os.path.join(work, "sim")
sim = subprocess.Popen([HUBD, "simulate", "--scale", str(args.scale), "--period", period, "--out", sim_dir], stdout=subprocess.DEVNULL)
env_file = os.path.join(sim_dir, "feeds.env")
for _ in range(600):
    if os.path.exists(env_file): break
    time.sleep(0.1)
env = dict(os.environ)
for line in open(env_file, encoding="utf-8"):
    k, _, v = line.strip().partition("=")
    if k: env[k] = v
tag = f"crash_{os.getpid()}"
def store(name):
    if not args.postgres: return os.path.join(work, name + ".sqlite")
    return args.postgres + ("&" if "?" in args.postgres else "?") + f"schema={tag}_{name}"
db = store("crash")

def query(location, sql):
    """Rows of a query as tuples of text (None for NULL), on SQLite or PostgreSQL."""
    if not location.startswith("postgres"):
        if not os.path.exists(location): raise RuntimeError("no store yet")
        con = sqlite3.connect(location)
        try: return [tuple(None if v is None else str(v) for v in r) for r in con.execute(sql)]
        finally: con.close()
    base, _, opts = location.partition("?")
    schema = [o.split("=", 1)[1] for o in opts.split("&") if o.startswith("schema=")][0]
    keep = "&".join(o for o in opts.split("&") if not o.startswith("schema="))
    out = subprocess.run(["psql", base.replace("postgres://", "postgresql://", 1) + ("?" + keep if keep else ""), "-X", "-q", "-A", "-t",
                          "-F", "\x1f", "-R", "\x1e", "-P", "null=\x01", "-v", "ON_ERROR_STOP=1",
                          "-c", f"SET search_path TO {schema}", "-c", sql], capture_output=True, text=True)
    if out.returncode != 0: raise RuntimeError(out.stderr)
    rows = [r for r in out.stdout.split("\x1e") if r.strip("\n")]
    return [tuple(None if v == "\x01" else v for v in r.strip("\n").split("\x1f")) for r in rows]

sources = sorted(f[:-5] for f in os.listdir(mappings) if f.endswith(".yaml"))
configs = []
for w in range(args.workers):
    config = os.path.join(work, f"hub{w}.yaml")
    open(config, "w").write(f"database: {db}\nmappings: {mappings}\narchive: {{ folder: {os.path.join(work, 'archive')} }}\n"
                            f"web: {{ port: {free_port()} }}\nscheduler: {{ check_every_seconds: 1 }}\nlog_level: warning\n")
    configs.append(config)

def serve(w=0):
    return subprocess.Popen([HUBD, "serve", "--config", configs[w]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def settled():
    try:
        done = {r[0] for r in query(db, f"SELECT source FROM runs WHERE status = 'succeeded' AND period = '{period}'")}
        pending = int(query(db, "SELECT count(*) FROM runs WHERE status = 'succeeded' AND CAST(rules_evaluated AS INTEGER) = 0")[0][0])
        return done >= set(sources) and pending == 0
    except Exception:
        return False

kills = 0
workers = [None] * args.workers
try:
    for i in range(args.kills):
        # Every worker running; one of them is killed (with one worker: the service itself).
        for w in range(args.workers):
            if workers[w] is None or workers[w].poll() is not None: workers[w] = serve(w)
        time.sleep(rng.uniform(0.05, 1.2))
        victim = rng.randrange(args.workers)
        workers[victim].send_signal(signal.SIGKILL); workers[victim].wait(); workers[victim] = None
        kills += 1
    for w in range(args.workers):
        if workers[w] is None or workers[w].poll() is not None: workers[w] = serve(w)
    deadline = time.time() + 300
    while time.time() < deadline and not settled(): time.sleep(0.2)
    for p in workers:
        p.send_signal(signal.SIGTERM)
    for p in workers:
        p.wait(60)
    if not settled():
        print("crash-resume: the service never completed every source after the kills"); print("crash-resume: 0 passed, 1 failed"); sys.exit(1)

    # The reference: one clean pull of the same county, rules evaluated once.
    ref = store("ref")
    subprocess.run([HUBD, "demo", "--scale", str(args.scale), "--period", period, "--db", ref, "--mappings", mappings,
                    "--sim-dir", os.path.join(work, "refsim"), "--no-archive"], check=True, stdout=subprocess.DEVNULL)

    def snapshot(location):
        out = {}
        if location.startswith("postgres"):
            tables = [r[0] for r in query(location, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'rec\\_%' ORDER BY 1")]
        else:
            tables = [r[0] for r in query(location, "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'rec_*' ORDER BY name")]
        for t in tables:
            out[t] = sorted(query(location, f'SELECT _source, _key, _hash FROM "{t}"'))
        out["quarantine"] = sorted(query(location, "SELECT source, period, row_hash, reasons FROM quarantine"))
        out["alerts"] = sorted(query(location, "SELECT rule, subject_kind, subject_id, period, household_id, message FROM alerts"), key=str)
        out["cases"] = sorted(query(location, "SELECT case_key, period, household_id, township_code, severity FROM cases"), key=str)
        return out
    got, want = snapshot(db), snapshot(ref)
    problems = []
    for k in sorted(set(got) | set(want)):
        g, w = got.get(k, []), want.get(k, [])
        if g != w:
            problems.append(f"{k}: {len(g)} rows after the kills, {len(w)} in a clean pull; "
                            f"missing {len(set(w) - set(g))}, extra {len(set(g) - set(w))}, duplicates {len(g) - len(set(g))}")
    records = sum(len(v) for k, v in want.items() if k.startswith("rec_"))
    # Each source's month pulled to the end exactly once: a killed pull rolled back, and no two
    # workers pulled the same source (each claims it first).
    twice = query(db, f"SELECT source, count(*) FROM runs WHERE status = 'succeeded' AND period = '{period}' GROUP BY source HAVING count(*) > 1")
    if twice:
        problems.append("sources pulled to the end more than once: " + ", ".join(f"{s} ×{n}" for s, n in twice))
    runs = int(query(db, "SELECT count(*) FROM runs")[0][0])
    mid_pull = int(query(db, "SELECT count(*) FROM runs WHERE error LIKE '进程中断%'")[0][0])
    where = f"PostgreSQL, {args.workers} worker(s)" if args.postgres else "SQLite"
    print(f"crash-resume ({where}): {kills} SIGKILLs survived ({runs} runs started, {mid_pull} killed mid-pull, the rest at start-up or during rule evaluation); compared {records} records, "
          f"{len(want['quarantine'])} quarantined rows, {len(want['alerts'])} alerts, {len(want['cases'])} cases with a clean pull")
    for p_ in problems: print("  DIFFERENT " + p_)
    if os.environ.get("CRASH_DEBUG"):
        for k in ("alerts", "cases"):
            g, w = set(got[k]), set(want[k])
            for x in sorted(w - g): print("  missing", k, x)
            for x in sorted(g - w): print("  extra", k, x)
    print(f"crash-resume: {0 if problems else 1} passed, {1 if problems else 0} failed")
    sys.exit(1 if problems else 0)
finally:
    for p in workers:
        if p is not None and p.poll() is None: p.kill()
    sim.terminate(); sim.wait(10)
    if args.postgres:
        for name in ("crash", "ref"):
            try: query(store(name), f"DROP SCHEMA {tag}_{name} CASCADE")
            except Exception: pass
    shutil.rmtree(work, ignore_errors=True)
