#!/usr/bin/env bash
# GPU figures for issue 14, in one short run (a few minutes on one GPU):
#   BIM/ILL image-steps/s and the ε-sweep speed-up vs torchattacks, EOT image-steps/s (when the
#   EOT benchmark is in the tree), evaluate images/s, and a 2-process craft on the GPU.
#   bash benchmarks/gpu_check.sh [BATCH]          (needs a CUDA GPU; prints, writes nothing kept)
set -euo pipefail
BATCH=${1:-64}
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU"
print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
PY
echo "== BIM + ILL sweep at eps 2,4,8,16 vs torchattacks (batch $BATCH)"
python benchmarks/craft_speed.py --sweep --batch "$BATCH" --device cuda
if [ -f benchmarks/eot_speed.py ]; then
  echo "== EOT"; python benchmarks/eot_speed.py --help | grep -q -- --device \
    && python benchmarks/eot_speed.py --device cuda || echo "eot_speed.py has no --device: skipped"
fi
echo "== evaluate images/s"
python benchmarks/eval_speed.py --images 256 --batch-size "$BATCH" --device cuda
echo "== craft through the CLI on the GPU, auto batch size (TF32 off, recorded)"
WS=$(mktemp -d)
python -m physical --workspace "$WS" -q craft --images demo --run g --device cuda --attacks fgsm,bim,ill --eps 2,4,8,16
python -c "import json,sys; m=json.load(open(sys.argv[1])); print('numerics', m['numerics'])" "$WS/printouts/g/manifest.json"
rm -rf "$WS"
