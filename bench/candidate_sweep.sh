#!/bin/bash
# Candidate sweep (issue 11; H1-H4 were run with it on one H200): pretrain 4 corpus variants and
# their students at once, eval + probe each base, the demo (R1-Zero) on each, eval + probe after
# RL, countdown RL; plus the GPU path of sft / zero / eval in bf16. Everything lands in $OUT (a
# tar per variant and logs.tgz). SMOKE=1 DEV=cpu PY=.venv/bin/python runs it tiny on a CPU.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src:${PYTHONPATH} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}; R="$PY -m r1lab"; W=${W:-/tmp/w}; O=/tmp/o; P=${OUT:-/tmp/out}; mkdir -p $W $O $P
# At most 8 files come back: a tar per variant (models) and logs.tgz, repacked every 15 s so
# that a run stopped at its time limit still returns what it had.
pack() { tar czf $P/logs.tgz.tmp -C /tmp o 2>/dev/null && mv $P/logs.tgz.tmp $P/logs.tgz; }
( while true; do sleep 15; pack; done ) &
PACKER=$!
DEV=${DEV:-cuda}; T0=$(date +%s)
if [ -n "$SMOKE" ]; then S="steps=3 num_docs=400"; E="num_questions=4"; D="steps=1 eval_every=1 eval_questions=4 algo.prompts_per_step=2"; C="steps=1 eval_every=1 eval_questions=4 algo.prompts_per_step=2"; else S=""; E=""; D=""; C="steps=60 eval_every=20"; fi
declare -A V
V[h1]="corpus.division_work_share=0.2"
V[h2]="corpus.division_work_share=0.35"
V[h3]="corpus.division_work_share=0.2 corpus.verify_share=0.2"
V[h4]="corpus.division_work_share=0.35 corpus.verify_share=0.2"
left() { echo $(( ${BUDGET:-560} - ($(date +%s) - T0) )); }
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $O/stamps.log; }
stamp start; nvidia-smi -L 2>/dev/null
$PY -c "import torch, transformers; print(torch.__version__, transformers.__version__, torch.cuda.is_available())"
for v in "${!V[@]}"; do
  ( $R pretrain out=$W/$v block_size=512 batch_size=8 device=$DEV $S ${V[$v]} > $O/$v-pretrain.log 2>&1; stamp "$v pretrained rc=$?" ) & pids+=($!)
  ( $R pretrain preset=student out=$W/$v-student block_size=512 batch_size=8 device=$DEV $S ${V[$v]} > $O/$v-student.log 2>&1; stamp "$v student rc=$?" ) & pids+=($!)
done
# The GPU path of the released commands (issue 12 section 5), in bf16, on the shipped base model.
(
  $R sft --config configs/sft-micro.yaml device=$DEV dtype=bfloat16 steps=30 eval_every=10 out=$W/gpu-sft > $O/gpu-sft.log 2>&1; stamp "gpu sft rc=$?"
  $R zero --config configs/zero-arithmetic.yaml device=$DEV dtype=bfloat16 steps=4 eval_every=2 out=$W/gpu-zero > $O/gpu-zero.log 2>&1; stamp "gpu zero rc=$?"
  $R eval device=$DEV dtype=bfloat16 num_questions=32 out=$W/gpu-eval > $O/gpu-eval.log 2>&1; stamp "gpu eval rc=$?"
) &
wait "${pids[@]}"; pids=(); stamp "pretraining done"
for v in "${!V[@]}"; do tar cf $P/$v.tar -C $W --exclude=loss.png $v $v-student; done
for v in "${!V[@]}"; do
  (
    $R eval model=$W/$v task.ops=+*/ task.zh_fraction=0.2 max_new_tokens=256 device=$DEV $E out=$W/$v-arith > $O/$v-arith.log 2>&1
    $PY bench/reflection_probe.py $W/$v-arith/eval.json > $O/$v-probe-arith.md 2>&1
    gzip -c $W/$v-arith/eval.json > $O/$v-arith.json.gz
    $R eval model=$W/$v task.name=countdown task.zh_fraction=0.2 max_new_tokens=256 device=$DEV $E out=$W/$v-cd > $O/$v-cd.log 2>&1
    $PY bench/reflection_probe.py $W/$v-cd/eval.json > $O/$v-probe-cd.md 2>&1
    gzip -c $W/$v-cd/eval.json > $O/$v-cd.json.gz
    stamp "$v base evals done"
    if [ $v = h1 ]; then
      $R coldstart model=$W/$v device=$DEV rows=400 out=$W/$v-cold.jsonl > $O/$v-cold.log 2>&1; stamp "$v coldstart rc=$?"
      cp $W/$v-cold.stats.md $O/ 2>/dev/null
    fi
  ) & pids+=($!)
  (
    timeout $(left) $R demo model=$W/$v task.ops=+*/ task.zh_fraction=0.2 rollout.max_new_tokens=256 device=$DEV $D out=$W/$v-demo > $O/$v-demo.log 2>&1
    stamp "$v demo rc=$?"
    last=$(ls -d $W/$v-demo/checkpoints/step-* | tail -1)
    $R eval model=$last task.ops=+*/ task.zh_fraction=0.2 max_new_tokens=256 device=$DEV $E out=$W/$v-demo-eval > $O/$v-demo-eval.log 2>&1
    $PY bench/reflection_probe.py $W/$v-demo-eval/eval.json > $O/$v-demo-probe.md 2>&1
    gzip -c $W/$v-demo-eval/eval.json > $O/$v-demo-eval.json.gz
    cp $W/$v-demo/metrics.jsonl $O/$v-demo-metrics.jsonl
    stamp "$v demo eval done"
    timeout $(left) $R zero --config configs/zero-countdown.yaml model=$W/$v rollout.max_new_tokens=256 device=$DEV $C out=$W/$v-zcd > $O/$v-zcd.log 2>&1
    stamp "$v countdown rc=$?"
    cp $W/$v-zcd/metrics.jsonl $O/$v-zcd-metrics.jsonl
  ) & pids+=($!)
done
wait "${pids[@]}"; stamp "all done"; kill $PACKER; pack
