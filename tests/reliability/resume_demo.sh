#!/usr/bin/env bash
# Killed-and-resumed vs uninterrupted, on the synthetic data set (MPCL, 8 epochs):
#   tests/reliability/resume_demo.sh [CODE_DIR] [OUT_DIR]
# `mpcl fit` and one protocol fold are each run once uninterrupted and once killed with SIGKILL
# at the start of epoch 5, then resumed (fit: --ckpt_path <last.ckpt>; runner: the same command).
# CODE_DIR (default: this checkout) may be another checkout, e.g. an older commit, run with this
# checkout's venv and kill driver. Prints the test KL of each and the tested checkpoint.
set -u
HERE=$(cd "$(dirname "$0")/../.." && pwd)
CODE=$(cd "${1:-$HERE}" && pwd); D=${2:-runs/resume-demo}
mkdir -p "$D"; D=$(cd "$D" && pwd); rm -rf "$D"/*
cd "$CODE"
export PYTHONPATH=$CODE OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} WANDB_MODE=disabled
PY=$HERE/.venv/bin/python
W=$HERE/tests/reliability/worker.py
ARGS="--config experiments/synthetic/mpcl.yaml --trainer.max_epochs=8 --data.init_args.root=$D/data
 --trainer.enable_progress_bar=false --test_after_fit=true"
fit() { $PY "$W" "$1" -- mpcl fit $ARGS --trainer.default_root_dir="$D/$2" \
    --trainer.logger.init_args.save_dir="$D/$2" --results.output_dir="$D/$2" "${@:3}" > "$D/$2.log" 2>&1; }
fit none a; fit epoch:6 b; fit none b --ckpt_path "$D/b/mpcl/version_0/checkpoints/last.ckpt"
R="--config experiments/synthetic/mpcl.yaml --protocol kfold --folds 0 --seeds 1"
OV="--trainer.max_epochs=8 --data.init_args.root=$D/data"
$PY "$W" none -- runner run $R --output "$D/pa" -- $OV > "$D/pa.log" 2>&1
$PY "$W" epoch:6 -- runner run $R --output "$D/pb" -- $OV > "$D/pb.log" 2>&1
$PY "$W" none -- runner run $R --output "$D/pb" -- $OV >> "$D/pb.log" 2>&1
$PY - "$D" <<'PYEOF'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
for label, path in [("fit uninterrupted", d / "a"), ("fit killed+resumed", d / "b"),
                    ("fold 0 uninterrupted", d / "pa/fold-00-seed-1"),
                    ("fold 0 killed+rerun", d / "pb/fold-00-seed-1")]:
    p = json.loads((path / "test_results.json").read_text())
    print(f"{label}: test KL {p['results'][p['model']]['kl']!r}, tested {p['ckpt_path'].split(str(path) + '/')[-1]}")
PYEOF
