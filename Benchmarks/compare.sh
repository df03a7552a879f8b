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
    name, wall, kb = line.split()
    runs.setdefault(name, []).append((float(wall), int(kb)))
print(f"\n{n:,} claim rows, {rounds} rounds each, alternating; median wall seconds (peak MB)")
print(f"{'step':<10} {'before':>16} {'after':>16} {'after/before':>13}")
for step in ["roster", "claims", "rules", "repull"]:
    o, a = runs[f"old-{step}"], runs[f"new-{step}"]
    mo, ma = statistics.median(w for w, _ in o), statistics.median(w for w, _ in a)
    po, pa = max(k for _, k in o) / 1024, max(k for _, k in a) / 1024
    print(f"{step:<10} {mo:>8.2f} ({po:>4.0f} MB) {ma:>8.2f} ({pa:>4.0f} MB) {ma / mo:>13.2f}")
PYEOF
