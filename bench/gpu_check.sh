#!/bin/bash
# The GPU path of the released commands, checked in one call on one lent GPU (docs/benchmarks.md,
# "The GPU path"): mixed precision in `zero`, `sft` and `rm` (fp32 checkpoints, weights moved),
# resume, run-to-run determinism, the sampler's shared-prefix attention against the repeated
# prompt KV and against HF `generate`, and GRPO on a random model of Qwen2.5-0.5B's shape (peak
# memory, tokens/s). Not here: FSDP2 and the all-reduce over NCCL, which need two GPUs (one GPU
# cannot hold two NCCL ranks). Logs land in $OUT/logs.tgz, repacked every 15 s so that a call
# stopped at its limit still returns them.
#     bash bench/gpu_check.sh                       # on the GPU machine, python3 = its torch
#     SMOKE=1 DEV=cpu PY=.venv/bin/python bash bench/gpu_check.sh   # tiny, on a CPU
#     ONLY="zero-bf16 zero-resume" bash bench/gpu_check.sh          # some checks alone
# The GPU image has no math-verify (the evaluation's majority vote needs it): where .whl/ holds
# its wheels (math-verify, latex2sympy2_extended, antlr4-python3-runtime), they are installed
# into /tmp/site first.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src:${PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}; R="$PY -m r1lab"; W=${W:-/tmp/gw}; L=$W/logs; P=${OUT:-/tmp/gout}
rm -rf $W; mkdir -p $L $P
pack() { tar czf $P/logs.tgz.tmp -C $W logs 2>/dev/null && mv $P/logs.tgz.tmp $P/logs.tgz; }
( while true; do sleep 15; pack; done ) &
PACKER=$!
DEV=${DEV:-cuda}; T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $L/stamps.log; }
# run NAME SECONDS COMMAND...: one check, its output in logs/NAME.log, its exit status stamped.
run() {
  local name=$1 limit=$2; shift 2
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
  timeout "$limit" "$@" > $L/$name.log 2>&1; stamp "$name rc=$?"
}
if [ -n "$SMOKE" ]; then
  Z="steps=2 eval_every=1 eval_questions=4 algo.prompts_per_step=2 checkpoint_every=1"
  SF="steps=3 eval_every=2 checkpoint_every=2"; RM="steps=3 eval_every=2 pairs=200"
  BIG="--hidden 64 --layers 2 --heads 2 --inter 128"; RB="--prompts 4 --group 2 --max-new 16 --rounds 1"; RBP=$RB
  BZ="steps=1 algo.prompts_per_step=2 rollout.max_new_tokens=16"; DET="steps=1 algo.prompts_per_step=2"
else
  Z="steps=6 eval_every=3 eval_questions=32 checkpoint_every=3"
  SF="steps=30 eval_every=10 checkpoint_every=15"; RM="steps=20 eval_every=10"
  BIG=""; RB="--prompts 32 --group 8 --max-new 256 --rounds 3"
  RBP="--prompts 32 --group 8 --max-new 64 --rounds 3"
  BZ="steps=3 rollout.max_new_tokens=256"; DET="steps=2"
fi
stamp start
if ls .whl/*.whl > /dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
nvidia-smi -L > $L/env.log 2>&1
$PY -c "import torch, transformers; print(torch.__version__, transformers.__version__, \
torch.cuda.is_available() and torch.cuda.get_device_name())" >> $L/env.log 2>&1
ZC="--config configs/zero-arithmetic.yaml device=$DEV"

# 1. Mixed precision (fp32 weights, bf16 autocast) in each trainer, and a resume on the GPU.
run zero-bf16 150 $R zero $ZC dtype=bfloat16 $Z out=$W/zero-bf16
run zero-resume 60 $R zero --resume $W/zero-bf16 steps=$([ -n "$SMOKE" ] && echo 3 || echo 8)
run sft-bf16 90 $R sft --config configs/sft-micro.yaml device=$DEV dtype=bfloat16 $SF out=$W/sft-bf16
run rm-bf16 90 $R rm device=$DEV dtype=bfloat16 $RM out=$W/rm-bf16
run weights 60 $PY bench/gpu_weights.py src/r1lab/assets/base $W/zero-bf16 $W/sft-bf16 $W/rm-bf16

# 2. The same run twice: are the GPU's metrics bit-identical?
run det-a 60 $R zero $ZC dtype=float32 $DET eval_every=0 out=$W/det-a
run det-b 60 $R zero $ZC dtype=float32 $DET eval_every=0 out=$W/det-b
run det 10 $PY bench/gpu_weights.py --same-metrics $W/det-a $W/det-b

# 3. The sampler: shared prefix against the repeated prompt KV, and against HF generate.
run rollout-shared 120 $PY bench/rollout.py --shared-vs-plain --prompt-set arithmetic $RB
run rollout-hf 150 $PY bench/rollout.py --no-scaling --prompt-set arithmetic $RB

# 4. A model of Qwen2.5-0.5B's shape (random weights, the micro-world's tokenizer): the sampler
# in bf16, and `r1lab zero` in mixed precision with its peak GPU memory.
run big-model 60 $PY bench/gpu_weights.py --random-model $W/big $BIG
run big-rollout 150 $PY bench/rollout.py --model $W/big --dtype bfloat16 --shared-vs-plain \
  --eos ignored $RB
run big-plain 150 $PY bench/rollout.py --model $W/big --dtype bfloat16 --plain-step \
  --eos ignored $RBP
run big-zero 240 $PY bench/gpu_weights.py --peak -- zero model=$W/big device=$DEV \
  dtype=bfloat16 eval_every=0 $BZ out=$W/big-zero
for d in zero-bf16 sft-bf16 rm-bf16 det-a det-b big-zero; do
  cp $W/$d/metrics.jsonl $L/$d-metrics.jsonl 2>/dev/null
done
stamp done
kill $PACKER 2>/dev/null; pack
