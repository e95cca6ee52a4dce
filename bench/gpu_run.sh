#!/usr/bin/env bash
# The device run of the speed issue, as one call (the guide's device recipe: `.gl` holds the
# Vulkan loader's packages, `.bin` the stripped `wgtrain`, the `kernels` test binary, Burn's
# peer as peer-burn.xz and ../shared/peers/torch_mlp_bench.py): the kernel tests on the GPU
# (the autotune's tiles and split-K at awkward shapes), the mlp-bench profile at batch 64, the
# whole suite as JSON, the mlp-bench again with the autotune cache warm (its first step), then
# PyTorch's and Burn's peers on the same card. Every step has its own time limit, so one that
# hangs costs only its share. QUICK=1: a dry run on lavapipe; BURN="64" for fewer peer batches;
# PARTS picks steps (default all: "tests profile suite warm peers"; "matmul" is the square
# matmuls alone, f32 and cooperative-matrix f16, at 1024, 4096 and 8192). nvidia-smi logs the
# clocks every 250 ms to clocks.csv (an idle GPU's clock falls within a second). At most 8
# files come back from a device call, so the steps share them: summary.txt, tests.txt,
# profile.txt, bench.txt (suite, warm run, matmuls), bench.jsonl, matmul.jsonl, peers.txt,
# clocks.csv.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ -z "${QUICK:-}" ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  SUITE=""; BURN=${BURN:-64 16384}; TESTS=${TESTS:-}
else
  SUITE="--quick"; BURN=""; TESTS="coop"
fi
# The autotune cache stays out of $OUT: its file would take one of the 8 that come back.
export XDG_RUNTIME_DIR=/tmp WGTRAIN_CACHE_DIR=/tmp/wgtrain-cache
PARTS=${PARTS:-tests profile suite warm peers}
has() { [[ " $PARTS " == *" $1 "* ]]; }
summary="$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$summary" 2>&1
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,clocks_event_reasons.active \
  --format=csv -lms 250 > "$OUT/clocks.csv" 2>&1 &
clocks=$!
trap 'kill $clocks 2>/dev/null' EXIT
step() { # name, seconds, command...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout "$limit" "$@"
  echo "$name: rc=$? in $((SECONDS - start)) s" >> "$summary"
}
if has tests; then
  step tests 90 .bin/kernels $TESTS > "$OUT/tests.txt" 2>&1
  grep -E "test result|FAILED|panicked|skipped" "$OUT/tests.txt" | head -8 >> "$summary"
fi
has profile && step profile 20 .bin/wgtrain bench --profile 64 > "$OUT/profile.txt" 2>&1
if has matmul; then
  step matmul 120 .bin/wgtrain bench --matmul 1024,4096,8192 --json "$OUT/matmul.jsonl" \
    >> "$OUT/bench.txt" 2>&1
  grep matmul "$OUT/bench.txt" >> "$summary"
fi
has suite && step suite 170 .bin/wgtrain bench $SUITE --json "$OUT/bench.jsonl" >> "$OUT/bench.txt" 2>&1
has warm && step warm-cache 40 .bin/wgtrain bench --mlp 64,256 >> "$OUT/bench.txt" 2>&1
if has peers && [ -z "${QUICK:-}" ]; then
  PYTHONUNBUFFERED=1 step torch 90 python3 .bin/torch_mlp_bench.py >> "$OUT/peers.txt" 2>&1
  xz -dc .bin/peer-burn.xz > /tmp/peer-burn && chmod +x /tmp/peer-burn
  # One JSON line per batch; warm-up includes Burn's autotune (30-106 s per batch on an H100).
  # shellcheck disable=SC2086
  step burn 170 /tmp/peer-burn --steps 200 --warmup 5 $BURN >> "$OUT/peers.txt" 2>&1
fi
cat "$summary"
grep -sE "mlp-bench" "$OUT/bench.txt"
grep -sE "sum " "$OUT/profile.txt"
tail -n 40 "$OUT/peers.txt" 2>/dev/null
