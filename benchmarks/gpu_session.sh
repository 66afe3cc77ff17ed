#!/usr/bin/env bash
# The GPU checks of a session that is lent the device machine (../shared/GPU.md):
# the `gpu`-marked tests on torch and JAX (and the CPU lean-run benchmark beside
# them), then float32 against mixed precision and --deterministic per backend
# (docs/benchmarks.md, "On a GPU"). Run there
# from the repository root with the keras wheels carried in .whl/:
#
#     bash benchmarks/gpu_session.sh            # results under $OUT
#
# The image has no TensorFlow (its wheel can't travel), so TensorFlow's GPU
# figures are not taken here. Each part has its own time limit, so one that
# hangs can't take the rest of the lease with it.
set -u
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
[ -n "${SKIP_INSTALL:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
{ nvidia-smi -L; nproc; KERAS_BACKEND=torch python3 -c "import sys, torch, jax, keras; print(sys.version.split()[0], 'torch', torch.__version__, 'jax', jax.__version__, 'keras', keras.__version__)"; } | tee "$OUT/machine.txt"

# The lean-run benchmark on this machine's CPUs (GPU hidden: the plain PyTorch
# script it compares with runs on the CPU), beside the tests: each of its
# rounds runs both sides, so what the tests take from the cores hits both.
if [ -n "${LEAN_ROUNDS-2}" ]; then
  CUDA_VISIBLE_DEVICES= timeout "${LEAN_LIMIT:-240}" python3 benchmarks/lean_run.py --epochs 3 \
    --rounds "${LEAN_ROUNDS:-2}" --cache-dir /tmp/bench-lean > "$OUT/lean-run.md" 2>&1 &
fi

# The tests of both backends side by side (16 cores); JAX must not take 75% of
# the card up front, as its tests start training subprocesses of their own.
GPU_TESTS="tests/backend/test_backend.py tests/train/test_engine.py tests/test_predict.py"
for b in torch jax; do
  KERAS_BACKEND=$b XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "${TEST_LIMIT:-200}" \
    python3 -m pytest -q -p no:cacheprovider -m gpu $GPU_TESTS > "$OUT/gpu-tests-$b.log" 2>&1 &
done
wait
tail -n 8 "$OUT"/gpu-tests-*.log "$OUT/lean-run.md"

# A folder of shapes PNGs, drawn on all cores, for the precision runs.
DATA=/tmp/shapes-gpu
python3 - "$DATA" "${IMAGES_PER_CLASS:-400}" "${DRAW_SIZE:-160}" <<'EOF'
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from portaclass.data.shapes import SHAPE_CLASSES, draw_shape

root, per_class, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def draw(job):
    kind, index = job
    path = root / kind / f"{index:05d}.png"
    Image.fromarray(draw_shape(kind, size, np.random.default_rng(index))).save(path)

for kind in SHAPE_CLASSES:
    (root / kind).mkdir(parents=True, exist_ok=True)
with Pool() as pool:
    pool.map(draw, [(kind, i) for kind in SHAPE_CLASSES for i in range(per_class)], chunksize=16)
print(f"{root}: {per_class * len(SHAPE_CLASSES)} images at {size} px")
EOF

for b in ${BENCH_BACKENDS:-torch jax}; do
  timeout "${BENCH_LIMIT:-240}" python3 benchmarks/train_variants.py --backends "$b" \
    --variants float32,mixed_float16,mixed_bfloat16,deterministic --rounds "${ROUNDS:-1}" --epochs 3 \
    --data "$DATA" --model resnet18 --image-size "${DRAW_SIZE:-160}" --batch-size 64 --augment none \
    2>&1 | tee "$OUT/train-variants-$b.md"
done
