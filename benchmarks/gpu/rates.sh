#!/usr/bin/env bash
# GPU job 1 (rates): member-updates/s of DIPOLE (the authors' policy critic and the IQL-critic form), FQL and IFQL
# populations of 5 tasks x 5 seeds at `small` and `paper` sizes, each alone and all four at once on the one GPU; then,
# in the time left, both DIPOLE forms on the development suite ogbench-mini (4 seeds) side by side.
#
#   OUT=/tmp/out DEADLINE_S=480 bash benchmarks/gpu/rates.sh             # on the GPU machine
#   OUT=/tmp/out DEADLINE_S=200 TINY=1 bash benchmarks/gpu/rates.sh      # end-to-end check on a CPU
#
# Writes into $OUT: machine.txt, rates.jsonl (one line per agent and size, alone), concurrent.jsonl (one line per
# agent, all started together and timed over the same window), bench_*.log and bench.tgz (the benches' results).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:?set OUT to the output folder}
mkdir -p "$OUT"
T0=$(date +%s)
DEADLINE=$((T0 + ${DEADLINE_S:-480}))
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
AGENTS=("dipole" "dipole[critic=iql]" "fql" "ifql")
if [ -n "${TINY:-}" ]; then
  SIZES=small; TASKS=2; SEEDS=1; ROWS=5000; SECS=1; CHUNK=20; BENCH_SUITE=smoke; BENCH_SEEDS=1; LEAD=60
else
  SIZES=small,paper; TASKS=5; SEEDS=5; ROWS=1000000; SECS=3; CHUNK=1000; BENCH_SUITE=ogbench-mini; BENCH_SEEDS=4
  LEAD=45
fi
left() { echo $((DEADLINE - $(date +%s))); }

{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; nproc; python -c "import jax; print(jax.__version__, jax.devices())"; } \
  > "$OUT/machine.txt" 2>&1

echo "== rates, each agent alone ($(left) s left)"
agents_csv=$(IFS=,; echo "${AGENTS[*]}")
python benchmarks/population.py --sizes "$SIZES" --agents "$agents_csv" --tasks $TASKS --seeds $SEEDS \
  --rows $ROWS --chunk $CHUNK --seconds $SECS | tee "$OUT/rates.jsonl"

echo "== rates, all four populations at once on one device ($(left) s left)"
start=$(( $(date +%s) + LEAD ))
pids=()
for i in "${!AGENTS[@]}"; do
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.2 python benchmarks/population.py --sizes small --agents "${AGENTS[$i]}" \
    --tasks $TASKS --seeds $SEEDS --rows $ROWS --chunk $CHUNK --seconds $((SECS * 4)) --skip-single \
    --start-at $start > "$OUT/concurrent_$i.jsonl" 2> "$OUT/concurrent_$i.err" &
  pids+=($!)
done
wait "${pids[@]}"
cat "$OUT"/concurrent_*.jsonl > "$OUT/concurrent.jsonl"; cat "$OUT"/concurrent_*.err > "$OUT/concurrent.err"
rm -f "$OUT"/concurrent_*.jsonl "$OUT"/concurrent_*.err
cat "$OUT/concurrent.jsonl"

budget=$(( $(left) - 25 ))
echo "== $BENCH_SUITE, both DIPOLE forms side by side, $BENCH_SEEDS seeds ($budget s for it)"
W=/tmp/dipole-gpu-bench; mkdir -p $W
if [ $budget -gt 60 ]; then
  for form in policy iql; do
    XLA_PYTHON_CLIENT_MEM_FRACTION=0.3 timeout $budget python -c "import sys; from dipole.cli import main; sys.exit(main())" \
      bench --suite $BENCH_SUITE --agents dipole --seeds $BENCH_SEEDS --workers 8 --config.critic $form \
      --out $W/$form > "$OUT/bench_$form.log" 2>&1 &
  done
  wait
fi
# results, tables and logs only: a population checkpoint of 20 small members is several tens of MB
tar czf "$OUT/bench.tgz" --exclude='./*/data' --exclude='*.dpl' -C $W . 2>/dev/null
echo "== done in $(( $(date +%s) - T0 )) s"
