#!/usr/bin/env bash
# Two hub binaries on the same job (roster pull, claims pull over HTTP, join rule, unchanged
# re-pull), alternating round by round so that both see the same machine: the before/after
# figure of a change. Prints the median of each step and the peak memory.
#   Benchmarks/compare.sh OLD_HUBD NEW_HUBD [N] [ROUNDS]
# e.g. git worktree add /tmp/before <rev> && (cd /tmp/before && swift build -c release --product hubd)
#      Benchmarks/compare.sh /tmp/before/.build/release/hubd .build/release/hubd 1000000 3
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2"); shift 2
ROUNDS="${2:-3}"
cd "$(dirname "$0")/.."
source Benchmarks/lib.sh
rm -f "$B/results.txt"
for round in $(seq "$ROUNDS"); do
  for which in old new; do
    bin=$OLD; [ "$which" = new ] && bin=$NEW
    rm -f "$B"/compare.sqlite*
    measure "$which-roster" "$bin" pull roster --period 2026-10 --db "$B/compare.sqlite" --mappings "$M" --skip-rules
    measure "$which-claims" "$bin" pull claims --period 2026-10 --db "$B/compare.sqlite" --mappings "$M" --skip-rules
    measure "$which-rules" "$bin" rules eval --period 2026-10 --db "$B/compare.sqlite" --mappings "$M"
    measure "$which-repull" "$bin" pull claims --period 2026-10 --db "$B/compare.sqlite" --mappings "$M" --skip-rules
  done
done
python3 - "$N" "$ROUNDS" "$B/results.txt" <<'PYEOF'
import statistics, sys
n, rounds = int(sys.argv[1]), int(sys.argv[2])
runs = {}
for line in open(sys.argv[3]):
    name, wall, kb, cpu = line.split()
    runs.setdefault(name, []).append((float(wall), int(kb), float(cpu)))
print(f"\n{n:,} claim rows, {rounds} rounds each, alternating; medians of wall and CPU (user + system) seconds, peak MB")
print(f"{'step':<8} {'before wall':>12} {'cpu':>7} {'MB':>5} {'after wall':>11} {'cpu':>7} {'MB':>5} {'wall ×':>7} {'cpu ×':>6}")
for step in ["roster", "claims", "rules", "repull"]:
    o, a = runs[f"old-{step}"], runs[f"new-{step}"]
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    wo, wa, co, ca = med(o, 0), med(a, 0), med(o, 2), med(a, 2)
    po, pa = max(x[1] for x in o) / 1024, max(x[1] for x in a) / 1024
    print(f"{step:<8} {wo:>12.2f} {co:>7.2f} {po:>5.0f} {wa:>11.2f} {ca:>7.2f} {pa:>5.0f} {wa / wo:>7.2f} {ca / co:>6.2f}")
PYEOF
