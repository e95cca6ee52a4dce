#!/usr/bin/env bash
# wgtrain's mlp-bench beside Burn's (../shared/peers/burn-mlp-bench) on the same adapter, in one
# run: at each batch size wgtrain (`bench --mlp`, run_steps and fit), then Burn (STEPS timed
# steps after WARMUP, its autotune included in the warm-up), then the ratios. The peer is built
# once into $PEER_CACHE (about 30 minutes on 2 cores) and reused. The table goes to stdout and
# to bench/results/compare-<adapter>-<date>.md (-2, -3, ... for later runs that day).
#   BATCHES="64 256 1024" STEPS=30 WARMUP=5 bench/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
peer_src=${PEER_SRC:-../shared/peers/burn-mlp-bench}
peer_cache=${PEER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wgtrain/burn-mlp-bench}
batches=${BATCHES:-64 256 1024}
steps=${STEPS:-30}
warmup=${WARMUP:-5}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

peer=$peer_cache/target/release/peer-burn
if [ ! -x "$peer" ]; then
  echo "building Burn's peer into $peer_cache (once)" >&2
  mkdir -p "$peer_cache"
  cp -r "$peer_src"/Cargo.toml "$peer_src"/Cargo.lock "$peer_src"/src "$peer_cache"/
  (cd "$peer_cache" && cargo build --release)
fi
cargo build --release --bin wgtrain >&2

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
rows=()
for b in $batches; do
  echo "batch $b: wgtrain" >&2
  target/release/wgtrain bench --mlp "$b" --json "$scratch/ours.jsonl" >&2
  echo "batch $b: Burn ($warmup warm-up steps, then $steps)" >&2
  "$peer" --steps "$steps" --warmup "$warmup" "$b" > "$scratch/burn.json"
  rows+=("$(python3 - "$scratch/ours.jsonl" "$scratch/burn.json" "$b" <<'EOF'
import json, sys
ours = [json.loads(line) for line in open(sys.argv[1])]
burn = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
run = next(m for m in ours if m["name"] == "mlp-bench")
fit = next(m for m in ours if m["name"] == "mlp-bench-fit")
b = burn["steps_per_s"]
print(f"| {sys.argv[3]} | {run['figure']:.2f} | {fit['figure']:.2f} | {b:.2f} | "
      f"{run['figure'] / b:.2f}x | {fit['figure'] / b:.2f}x | {fit['figure'] / run['figure']:.2f} |")
EOF
)")
  adapter=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["adapter"])' "$scratch/ours.jsonl")
done

date=$(date +%F)
slug=$(echo "$adapter" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9\n' '-' | sed 's/--*/-/g; s/-$//' | cut -c1-40)
report=bench/results/compare-$slug-$date.md
# A second run the same day gets its own file (-2, -3, ...) rather than replacing the first.
n=1
while [ -e "$report" ]; do
  n=$((n + 1))
  report=bench/results/compare-$slug-$date-$n.md
done
{
  echo "# mlp-bench: wgtrain beside Burn 0.22.1, one run of bench/compare.sh"
  echo
  echo "Adapter: $adapter; $date; Burn: $steps timed steps after $warmup warm-up steps."
  echo
  echo "| batch | wgtrain run_steps | wgtrain fit | Burn | run_steps / Burn | fit / Burn | fit / run_steps |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
} | tee "$report"
echo "written to $report" >&2
