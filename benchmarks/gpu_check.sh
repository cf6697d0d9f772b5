#!/usr/bin/env bash
# Every GPU measurement of docs/benchmarks.md and docs/many-subjects.md in one time-boxed run.
#
#   OUT=runs/gpu-check bash benchmarks/gpu_check.sh            # on a CUDA machine
#   OUT=/tmp/x DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh  # a dry run of the script on a CPU
#
# Parts (each stopped after its own limit; what a part wrote is kept):
#   1. correctness: the CUDA-parametrised tests (fast paths, stacked vs one-by-one), the
#      stacked-vs-loop equality under default / TF32 / deterministic settings, and, at the same
#      time on the host CPU, MPCL's one-thread CPU latencies (eager, TorchScript, AOTInductor);
#   2. `make bench` on the device (MPCL, MLP): training step, FLOPs and FLOP/s, eager and fast
#      single-window latency, Lightning overhead;
#   3. the many-subjects engine at DMER size (73 subjects, 120 rows per clip): 32-bit, bf16,
#      compiled; time per epoch, projected 300 epochs, test KL against 32-bit.
# Results land in $OUT (check.log plus a few reports); work files under $WORK.
set -u
OUT=${OUT:-runs/gpu-check}
WORK=${WORK:-/tmp/mpcl-gpu-work}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOG="$OUT/check.log"

say() { echo "=== $* ($(date -u +%T))" | tee -a "$LOG"; }

# part NAME LIMIT_S COMMAND...: run time-boxed, full output appended to the log.
part() {
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    say "$name: start, limit ${limit} s"
    timeout -k 5 "$limit" "$@" >>"$LOG.$name" 2>&1
    local status=$?
    cat "$LOG.$name" >>"$LOG"
    rm -f "$LOG.$name"
    say "$name: exit $status after $((SECONDS - start)) s"
}

if [ "$QUICK" = 1 ]; then
    BENCH_SIZES=(--quick)
    SUBJECTS=3 ROWS=2 EPOCHS=2 EQ_SIZES=(--subjects 3 --rows-per-clip 2 --epochs 1)
    VARIANTS=fp32,bf16 LIMITS=(300 300 300)
    TESTS=(tests/inference/test_fastpath.py)
else
    BENCH_SIZES=(--steps 10 --repeats 3 --warmup 2 --latency-calls 200 --epoch-repeats 3)
    SUBJECTS=73 ROWS=120 EPOCHS=3 EQ_SIZES=(--subjects 6 --rows-per-clip 6 --epochs 5)
    VARIANTS=fp32,bf16,bf16-compile,compile LIMITS=(150 170 170)
    TESTS=(tests/inference/test_fastpath.py tests/multisubject/test_equivalence.py)
fi
ACCELERATOR=$([ "$DEVICE" = cuda ] && echo gpu || echo cpu)
# Overrides for a shorter run: LIMITS="60 100 90" VARIANTS=fp32,bf16 BENCH_MODELS=MPCL ...
read -r -a LIMITS <<<"${LIMITS_OVERRIDE:-${LIMITS[*]}}"
VARIANTS=${VARIANTS_OVERRIDE:-$VARIANTS}
BENCH_MODELS=${BENCH_MODELS:-MPCL,MLP}
EQ_SETTINGS=${EQ_SETTINGS:-default tf32 deterministic}
EQ_MODELS=${EQ_MODELS:-MLP,MPCL}
EPOCHS=${EPOCHS_OVERRIDE:-$EPOCHS}
ROWS=${ROWS_OVERRIDE:-$ROWS}

say "environment"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv 2>&1
    "$PY" -c "import torch, lightning, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'lightning', lightning.__version__, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name(0)); print('tf32 matmul', torch.backends.cuda.matmul.allow_tf32, 'cudnn tf32', torch.backends.cudnn.allow_tf32, 'matmul precision', torch.get_float32_matmul_precision())"
    nproc
} >>"$LOG" 2>&1

# 1. correctness (GPU) next to the CPU latencies (host CPU, one thread)
say "part 1: tests, equality and CPU latency side by side"
(CUBLAS_WORKSPACE_CONFIG=:4096:8 timeout -k 5 "${LIMITS[0]}" "$PY" -m pytest -q -p no:cacheprovider -m "slow or not slow" \
    -k "cuda or fastpath" "${TESTS[@]}" >"$WORK/pytest.log" 2>&1
    echo "pytest exit $?" >>"$WORK/pytest.log") &
TESTS_PID=$!
(OMP_NUM_THREADS=1 timeout -k 5 "${LIMITS[0]}" "$PY" -m benchmarks.bench --device cpu \
    --models MPCL --threads 1 --steps 2 --repeats 2 --warmup 2 --latency-calls 300 \
    --epoch-repeats 0 --data-root "$WORK/bench-data" --output-dir "$WORK/bench-cpu" \
    >"$WORK/bench-cpu.log" 2>&1; echo "cpu bench exit $?" >>"$WORK/bench-cpu.log") &
CPU_PID=$!
# One process per setting: cuBLAS reads its workspace configuration once per process, and the
# deterministic setting needs CUBLAS_WORKSPACE_CONFIG from the start (as Lightning documents).
for setting in $EQ_SETTINGS; do
    env $([ $setting = deterministic ] && echo CUBLAS_WORKSPACE_CONFIG=:4096:8) \
        timeout -k 5 "${EQ_LIMIT:-$((LIMITS[0] / 3))}" "$PY" -m benchmarks.equality --device "$DEVICE" \
        --models "$EQ_MODELS" --settings $setting --output "$WORK/equality-$setting" "${EQ_SIZES[@]}" \
        >>"$LOG" 2>&1
    say "equality $setting: exit $?"
    cat "$WORK/equality-$setting/equality.md" >>"$OUT/equality.md" 2>/dev/null
done
wait "$TESTS_PID" "$CPU_PID"
cat "$WORK/pytest.log" "$WORK/bench-cpu.log" >>"$LOG"
for f in "$WORK"/bench-cpu/*.md; do [ -f "$f" ] && cp "$f" "$OUT/bench-cpu.md"; done

# 2. make bench on the device
part bench "${LIMITS[1]}" "$PY" -m benchmarks.bench --device "$DEVICE" --models "$BENCH_MODELS" \
    --timeout "${BENCH_TIMEOUT:-$((LIMITS[1] - 30))}" "${BENCH_SIZES[@]}" --data-root "$WORK/bench-data" \
    --output-dir "$WORK/bench-$DEVICE"
for f in "$WORK/bench-$DEVICE"/*.md; do [ -f "$f" ] && cp "$f" "$OUT/bench-$DEVICE.md"; done
for f in "$WORK/bench-$DEVICE"/*.json; do [ -f "$f" ] && cp "$f" "$OUT/bench-$DEVICE.json"; done

# 3. the many-subjects engine at DMER size: 32-bit, bf16, compiled
part precision "${LIMITS[2]}" "$PY" -m benchmarks.stacked_precision \
    --config experiments/synthetic/mpcl.yaml --variants "$VARIANTS" \
    --output "$WORK/precision" -- --trainer.accelerator=$ACCELERATOR --trainer.devices=1 \
    --data.init_args.num_subjects=$SUBJECTS --data.init_args.rows_per_clip=$ROWS \
    --trainer.max_epochs=$EPOCHS --data.init_args.root="$WORK/ms-data"
cp "$WORK"/precision/precision.md "$WORK"/precision/precision.json "$OUT/" 2>/dev/null
say "done"
