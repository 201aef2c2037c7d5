# The shared speech pipeline, stages 2-16, sourced by every speech recipe's run.sh after its
# corpus stages (0 corpus/download, 1 manifests) wrote lhotse manifests to $data/manifests as
# <corpus>_{recordings,supervisions,cuts}_{train,dev,test}.jsonl.gz.
# Needs (set by the recipe): corpus config data exp nj ensemble_size temperature student_seeds
#   sweep_temperatures small_fraction topk_values stage_key, and run_stage (utils/recipe.sh); checked below.
# Stage 15 (deploy) exports the systems as model directories (asr-kd export), trains quarter-width
# networks, and writes the deployment table (asr-kd deploy-table).
# Stage 14 (k2 decoding of every system, and its agreement with Kaldi's decoder) runs in the k2
# environment, .venv-k2 (built by ./setup.sh) or $ASR_KD_K2_PYTHON. Without it the stage states k2's
# absence in the tables when k2 was opted out (ASR_KD_NO_K2=1) or ./setup.sh could not build it,
# and fails otherwise.
# Optional: sample_rate (features; default from the config), lang_opts, decode_opts, decode_title, analysis (true: the paper's
#   analysis stages 9-12; false skips them), decode_lmwt / decode_wip (the dev tuning grid), oracle_reference
#   (true for corpora with oracle phone times: stage 4 also trains the GMM on them, exp/mono_oracle, as a reference),
#   k2_opts (stage 14's decoder-agreement options), export_opts (stage 15's export options: the deployed decoder's beam).
for _var in corpus config data exp nj stage_key ensemble_size temperature student_seeds sweep_temperatures small_fraction topk_values; do
  [ -n "${!_var+set}" ] || { echo "utils/kd_stages.sh: the recipe must set \$$_var before sourcing it (see the list above)" >&2; exit 1; }
done
type run_stage >/dev/null 2>&1 || { echo "utils/kd_stages.sh: source utils/recipe.sh first (run_stage is missing)" >&2; exit 1; }
analysis=${analysis:-true}
oracle_reference=${oracle_reference:-false}
k2_python=${ASR_KD_K2_PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv-k2/bin/python}
k2_unavailable=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv-k2.unavailable  # ./setup.sh's reason, when it could not build k2
k2_opts=${k2_opts:-}  # decoder-agreement options, e.g. "--beam 12" for a large graph
k2_members=${k2_members:-all}  # stage 14 decodes the first N seeds of each system with both decoders, or all
deploy_table=${deploy_table:-true}  # stage 15: every system exported and the deployment table; false: the student and one transcript
export_opts=${export_opts:-}  # stage 15's export options, e.g. the decode stage's "--beam 12 --max-active 5000"
decode_lmwt=${decode_lmwt:-1,2,3,5,8,13}  # widened past an edge when the dev optimum sits on it
decode_wip=${decode_wip:-0,1}
sample_rate=${sample_rate:-}
decode_opts=${decode_opts:-}  # extra decode options, e.g. "--arpa data/lm/3-gram.pruned.1e-7.arpa", or re-decoding: "--decoder kaldi"
decode_title=${decode_title:-"WER: baseline vs. ensemble vs. distilled student (hybrid decoding, HCLG)"}
lang_opts=${lang_opts:-}   # extra prepare-lang options, e.g. "--dictionary FILE" or "--units bpe"
# GMM systems (stage 4), each started from the previous one's alignments: mono, then triphone systems named
# by their config sections (asr-kd train-tri --system: tri1 deltas, tri2 LDA+MLLT). labels: the system whose
# alignments (pdfs: monophone states or tied triphone states) the network stages 5-15 train on.
# label_systems: stage 16 repeats stages 5-7 and 13 on each of these systems' labels and tables them all.
gmm_systems=${gmm_systems:-mono}
labels=${labels:-mono}
label_systems=${label_systems:-$labels}
[[ " $gmm_systems " == *" $labels "* ]] || { echo "utils/kd_stages.sh: labels=$labels is not one of gmm_systems ($gmm_systems)" >&2; exit 1; }
[ "${gmm_systems%% *}" = mono ] || { echo "utils/kd_stages.sh: gmm_systems must start with mono (the flat start), not '$gmm_systems'" >&2; exit 1; }
ali=$exp/$labels  # the alignment folder of the network stages
nn=$exp           # the network stages' folder (stage 16 points it elsewhere for other labels)
system_name() {   # a row name for a GMM system
  case $1 in mono) echo "monophone";; tri1) echo "tri1, deltas";; tri2) echo "tri2, LDA+MLLT";; *) echo "$1";; esac
}

feature_splits=train,dev,test  # and the untranscribed transfer split, when the corpus stages made one (stage 18)
[ -f "$data/manifests/${corpus}_cuts_unlabelled.jsonl.gz" ] && feature_splits+=,unlabelled
stage_key=${data_key:-$stage_key} run_stage 2 features python -m asr_kd compute-fbank --config "$config" --nj "$nj" \
                        --manifest-dir "$data/manifests" --out "$data/fbank" --corpus "$corpus" --splits "$feature_splits" \
                        ${sample_rate:+--sample-rate "$sample_rate"} \
                        $( [ "${allow_pipes:-false}" = true ] && echo --allow-pipes )
run_stage 3 lang      python -m asr_kd prepare-lang --config "$config" --manifest-dir "$data/manifests" \
                        --corpus "$corpus" --dict-dir "$data/local/dict" --out "$data/lang" $lang_opts
align_splits() {
  python -m asr_kd train-mono --config "$config" --nj "$nj" --fbank-dir "$data/fbank" --corpus "$corpus" \
    --lang "$data/lang" --exp "$exp/mono" || return 1
  if $oracle_reference; then
    python -m asr_kd train-oracle-gmm --config "$config" --nj "$nj" --fbank-dir "$data/fbank" --corpus "$corpus" \
      --lang "$data/lang" --exp "$exp/mono_oracle" || return 1
  fi
  local prev=mono sys
  for sys in ${gmm_systems#mono}; do  # triphone systems, each from the previous system's alignments
    python -m asr_kd train-tri --config "$config" --system "$sys" --nj "$nj" --prev-dir "$exp/$prev" --fbank-dir "$data/fbank" \
      --corpus "$corpus" --lang "$data/lang" --exp "$exp/$sys" || return 1
    prev=$sys
  done
}
run_stage 4 align     align_splits
set_label_args() {  # the DNN stages' arguments for the labels in $ali and the network folder $nn
  dnn_args=(--config "$config" --ali-dir "$ali" --fbank-dir "$data/fbank" --corpus "$corpus")
  soft_args=(--teachers $(members) --ali-dir "$ali" --fbank-dir "$data/fbank" --corpus "$corpus" --nj "$nj")  # nj shards in parallel
  table_args=(--ali-dir "$ali" --fbank-dir "$data/fbank" --corpus "$corpus" --results-md "$nn/kd/RESULTS.md")
}

members() { for seed in $(seq 1 "$ensemble_size"); do echo "$nn/dnn/seed$seed/best.pt"; done; }
set_label_args

train_ensemble() {  # members are separate processes, at most $nj at a time
  local seed
  for seed in $(seq 1 "$ensemble_size"); do
    ddp_job "$nn/log/dnn_seed$seed.log" train-dnn "${dnn_args[@]}" --seed "$seed" --out "$nn/dnn/seed$seed"
  done
  bg_wait || { tail -n 5 "$nn"/log/dnn_seed*.log; return 1; }
  grep -H "best dev frame accuracy" "$nn"/log/dnn_seed*.log
}
train_students() {  # train_students SOFT_DIR OUT_DIR N_SEEDS [extra train-dnn args]
  local soft=$1 out=$2 n=$3 seed; shift 3
  local procs=${ddp_procs:-1} i=0 wave threads
  local slots=$(( nj / procs > 1 ? nj / procs : 1 ))  # students training at once
  for seed in $(seq 101 $((100 + n))); do
    # students start in waves of $slots; a wave of fewer (a lone student, the third of three on 2 cores) shares every core
    wave=$(( n - i / slots * slots < slots ? n - i / slots * slots : slots ))
    threads=$(( nj / (wave * procs) > 1 ? nj / (wave * procs) : 1 ))
    ddp_job "$out.seed$seed.log" train-dnn "${dnn_args[@]}" --seed "$seed" --threads "$threads" \
      --soft-targets "$soft" --teacher-models $(members) --out "$out/seed$seed" "$@"
    i=$((i + 1))
  done
  bg_wait || { tail -n 5 "$out".seed*.log; return 1; }
  grep -H "best dev frame accuracy" "$out".seed*.log
}
students() {  # students DIR: the checkpoints of this run's seeds in DIR (not leftovers of a run with more seeds)
  local n=1
  [ "$1" = "$nn/student_T$temperature" ] && n=$student_seeds  # stage 7's students; other folders hold one
  seq 101 $((100 + n)) | sed "s|^|$1/seed|; s|\$|/best.pt|" | paste -sd, -
}

# The paper's analyses (stages 9-11) distil from stored targets of the clean training frames, one seed each,
# on the config's student schedule: what the targets carry, not how the student is taught (stages 7, 17).
stored_opts="--no-online-teacher --augment none"
temperature_sweep() {  # each T compared with the config's (paired bootstrap on the test frames)
  local t rows=() pairs=()
  for t in $sweep_temperatures; do
    python -m asr_kd soft-targets "${soft_args[@]}" --temperature "$t" --out "$nn/soft_T$t"
    train_students "$nn/soft_T$t" "$nn/stored_T$t" 1 --temperature "$t" $stored_opts
    rows+=("T=$t=$(students "$nn/stored_T$t")")
  done
  for t in $sweep_temperatures; do
    [ "$t" != "$temperature" ] && [[ " $sweep_temperatures " == *" $temperature "* ]] && pairs+=("T=$temperature|T=$t")
  done
  python -m asr_kd frame-table "${table_args[@]}" --rows "${rows[@]}" --out "$nn/kd/table_5b_temperature" \
    ${pairs[@]+--compare "${pairs[@]}"} \
    --title "(5b) Distilled students by soft-target temperature (hard weight 0.5, T^2-scaled soft term)"
}

small_data() {
  local f=$small_fraction
  python -m asr_kd train-dnn "${dnn_args[@]}" --seed 1 --fraction "$f" --epochs 20 --out "$nn/small/hard" \
      > "$nn/log/small_hard.log" 2>&1
  python -m asr_kd train-dnn "${dnn_args[@]}" --seed 1 --fraction "$f" --epochs 20 --temperature "$temperature" \
      --soft-targets "$nn/soft_T$temperature" --teacher-models $(members) $stored_opts --out "$nn/small/soft" \
      > "$nn/log/small_soft.log" 2>&1
  python -m asr_kd frame-table "${table_args[@]}" --train-fraction "$f" \
    --rows "baseline, 100% of the training data=$(members | paste -sd, -)" \
           "hard labels, $f of the data=$nn/small/hard/best.pt" \
           "soft targets of the full-data ensemble, $f of the data=$nn/small/soft/best.pt" \
    --out "$nn/kd/table_5c_small_data" \
    --compare "hard labels, $f of the data|soft targets of the full-data ensemble, $f of the data" \
    --title "(5c) Soft targets as a regulariser: $f of the training data" \
    --note "The baseline row's train column is measured on the same subset (it saw all of the data)."
}

topk_compare() {  # the dense row is stage 9's student at the config's T (resumed; trained here when stage 9 was skipped)
  local k rows=("dense=$(students "$nn/stored_T$temperature")") storage=("dense=$nn/soft_T$temperature") pairs=()
  train_students "$nn/soft_T$temperature" "$nn/stored_T$temperature" 1 --temperature "$temperature" $stored_opts
  for k in $topk_values; do
    pairs+=("dense|top-$k")
    python -m asr_kd soft-targets "${soft_args[@]}" --temperature "$temperature" --topk "$k" --out "$nn/soft_T${temperature}_top$k"
    train_students "$nn/soft_T${temperature}_top$k" "$nn/student_T${temperature}_top$k" 1 --temperature "$temperature" \
      $stored_opts
    rows+=("top-$k=$(students "$nn/student_T${temperature}_top$k")")
    storage+=("top-$k=$nn/soft_T${temperature}_top$k")
  done
  python -m asr_kd frame-table "${table_args[@]}" --rows "${rows[@]}" --storage "${storage[@]}" --compare "${pairs[@]}" \
    --out "$nn/kd/table_5d_topk" --title "(5d) Top-k vs. dense soft targets (T=$temperature)"
}

realign_and_compare() {  # DNNs on each alignment's labels, seeds 1..min(3, ensemble size), one process per core
  local seeds=$(seq 1 $(( ensemble_size < 3 ? ensemble_size : 3 ))) seed
  python -m asr_kd realign-dnn --config "$config" --models $(members) --gmm-dir "$ali" --lang "$data/lang" \
    --fbank-dir "$data/fbank" --corpus "$corpus" --out "$nn/dnn_ali"
  local label_dirs=("$nn/dnn_ali=$nn/dnn_realigned")
  local oracle_row=$oracle_reference  # the oracle-trained reference shares the monophone tree: only beside monophone labels
  [ "$labels" = mono ] || oracle_row=false
  $oracle_row && label_dirs+=("$exp/mono_oracle=$nn/dnn_oracle_gmm")
  local pair ali out
  for pair in "${label_dirs[@]}"; do
    ali=${pair%%=*} out=${pair#*=}
    for seed in $seeds; do  # same seeds and threads as the ensemble's members, so only the labels differ
      bg_job "$nn/log/$(basename "$out")_seed$seed.log" python -m asr_kd train-dnn \
        --config "$config" --ali-dir "$ali" --fbank-dir "$data/fbank" --corpus "$corpus" --seed "$seed" --out "$out/seed$seed"
    done
  done
  bg_wait || { tail -n 5 "$nn"/log/dnn_realigned_seed*.log "$nn"/log/dnn_oracle_gmm_seed*.log 2>/dev/null; return 1; }
  ckpts() { for seed in $seeds; do echo "$1/seed$seed/best.pt"; done | paste -sd, -; }
  local rows=("GMM ($(system_name "$labels"))=$ali=$(ckpts "$nn/dnn")"
              "realigned with the $ensemble_size-DNN ensemble=$nn/dnn_ali=$(ckpts "$nn/dnn_realigned")")
  $oracle_row && rows+=("reference: GMM trained on oracle phone times=$exp/mono_oracle=$(ckpts "$nn/dnn_oracle_gmm")")
  python -m asr_kd alignment-table --fbank-dir "$data/fbank" --corpus "$corpus" --rows "${rows[@]}" \
    --lang "$data/lang" --manifest-dir "$data/manifests" --graph-dir "$nn/graph" --nj "$nj" \
    --lmwt "$decode_lmwt" --wip "$decode_wip" $decode_opts \
    --out "$nn/kd/table_alignments" --results-md "$nn/kd/RESULTS.md" \
    --title "Which alignment gives the better DNN (test set)"
}

run_stage 5 ensemble     train_ensemble
run_stage 6 soft-targets python -m asr_kd soft-targets "${soft_args[@]}" --temperature "$temperature" --out "$nn/soft_T$temperature"
run_stage 7 distill      train_students "$nn/soft_T$temperature" "$nn/student_T$temperature" "$student_seeds" --temperature "$temperature"
run_stage 8 results      python -m asr_kd speech-table --config "$config" --baselines $(members) \
                           --students $(students "$nn/student_T$temperature" | tr , ' ') \
                           --ali-dir "$ali" --fbank-dir "$data/fbank" --corpus "$corpus" --out "$nn/kd/table_5a" \
                           --results-md "$nn/kd/RESULTS.md" \
                           --title "(5a) Baseline vs. $ensemble_size-model ensemble vs. distilled student (T=$temperature)"
$analysis && run_stage 9 t-sweep      temperature_sweep
$analysis && run_stage 10 small-data  small_data
$analysis && run_stage 11 topk        topk_compare
$analysis && run_stage 12 realign     realign_and_compare
# (5e) what makes the student keep the gain: students taught in different ways, scored against the ensemble on dev.
# Each lever is a set of train-dnn options over the config's student and teaching sections (stage 7's students, the
# config's recipe, are the first row); same ensemble, temperature and seeds. short: the members' own schedule.
short_opts="--epochs 5 --select-on dev_acc --halve-below 0 --max-halvings 0"
cosine_opts="--epochs 20 --schedule cosine --select-on dev_kl --halve-below 0 --max-halvings 0"
newbob_opts="--epochs 20 --schedule newbob --select-on dev_kl --halve-below 0.01 --max-halvings 4"
teaching_levers=(
  "members' schedule: 5 epochs, stored targets|$short_opts $stored_opts"
  "patient: newbob on dev KL, stored targets|$newbob_opts $stored_opts"
  "patient: cosine over 20 epochs, stored targets|$cosine_opts $stored_opts"
  "student input augmented (SpecAugment), stored targets, 5 epochs|$short_opts --no-online-teacher --augment specaugment"
  "consistent: online ensemble on SpecAugment views, 5 epochs|$short_opts --online-teacher --augment specaugment"
  "consistent: online ensemble on mixup views, 5 epochs|$short_opts --online-teacher --augment mixup"
  "patient + consistent: cosine over 20 epochs, online ensemble on tempo views (0.9, 1.0, 1.1)|$cosine_opts --online-teacher --augment tempo"
  "patient + consistent: cosine over 20 epochs, online ensemble on tempo + mixup views|$cosine_opts --online-teacher --augment tempo+mixup"
)
# the paper's sweep on dev, around the config's T and hard weight, with the online mixup teacher (any T: no stored targets)
mixup_online="$cosine_opts --online-teacher --augment mixup"
for _t in 1 4; do teaching_levers+=("T=$_t, hard weight 0.5: cosine over 20 epochs, online ensemble on mixup views|$mixup_online --temperature $_t"); done
for _w in 0 1; do teaching_levers+=("T=$temperature, hard weight $_w: cosine over 20 epochs, online ensemble on mixup views|$mixup_online --hard-weight $_w"); done
lever_seeds=${lever_seeds:-1}
teaching_compare() {
  local soft=$nn/soft_T$temperature out=$nn/teaching spec name opts seed i=0 runs all=()
  local rows=("default (stage 7, the config's student and teaching)=$(seq 101 $((100 + student_seeds)) | sed "s|^|$nn/student_T$temperature/seed|" | paste -sd, -)")
  mkdir -p "$out"
  for spec in "${teaching_levers[@]}"; do
    name=${spec%%|*} opts=${spec#*|} i=$((i + 1)) runs=()
    for seed in $(seq 101 $((100 + lever_seeds))); do
      bg_job "$out/lever$i.seed$seed.log" python -m asr_kd train-dnn "${dnn_args[@]}" --seed "$seed" \
        --soft-targets "$soft" --temperature "$temperature" --teacher-models $(members) --out "$out/lever$i/seed$seed" $opts
      runs+=("$out/lever$i/seed$seed")
      all+=("$out/lever$i/seed$seed")
    done
    rows+=("$name=$(IFS=,; echo "${runs[*]}")")
  done
  # a control: does the long schedule alone make a single model as good? hard labels, cosine over 15 epochs
  bg_job "$out/control.log" python -m asr_kd train-dnn "${dnn_args[@]}" --seed 1 --out "$out/control_cosine15" \
    --epochs 15 --schedule cosine
  bg_wait || { tail -n 3 "$out"/lever*.log "$out/control.log"; return 1; }
  rows+=("control: hard labels, cosine over 15 epochs=$out/control_cosine15")
  python -m asr_kd teaching-table --rows "${rows[@]}" --teachers $(members) --ali-dir "$ali" --fbank-dir "$data/fbank" \
    --corpus "$corpus" --temperature "$temperature" --out "$nn/kd/table_5e_teaching" --results-md "$nn/kd/RESULTS.md" \
    --title "(5e) What makes the student keep the gain (dev, T=$temperature)"
  python -m asr_kd diagnose-student --students $(seq 101 $((100 + student_seeds)) | sed "s|^|$nn/student_T$temperature/seed|") \
    --teachers $(members) --references $(members | head -1) --ali-dir "$ali" --fbank-dir "$data/fbank" --corpus "$corpus" \
    --temperature "$temperature" --title "$corpus, stage 7 students" --out "$nn/kd/diagnosis"
}
# Students that also learn from untranscribed transfer audio: the stage-7 student's recipe on labelled frames plus
# R x as many frames of the corpus's unlabelled split (made by the corpus stages: --unlabelled-hours H, or recipes/custom
# --unlabelled-dir DIR), where the ensemble alone teaches; one student per R of $transfer_ratios, scored like (5e).
transfer_ratios=${transfer_ratios:-1 2 4}
transfer_compare() {
  local soft=$nn/soft_T$temperature out=$nn/transfer r
  local rows=("labelled only (stage 7)=$(seq 101 $((100 + student_seeds)) | sed "s|^|$nn/student_T$temperature/seed|" | paste -sd, -)")
  [ -f "$data/fbank/${corpus}_cuts_unlabelled.jsonl.gz" ] || {
    echo "stage 18: no untranscribed split in $data/fbank: rerun stages 0-2 with --unlabelled-hours H (or --unlabelled-dir DIR)" >&2
    return 1
  }
  mkdir -p "$out"
  for r in $transfer_ratios; do
    bg_job "$out/ratio$r.log" python -m asr_kd train-dnn "${dnn_args[@]}" --seed 101 --soft-targets "$soft" \
      --temperature "$temperature" --teacher-models $(members) --unlabelled-ratio "$r" --out "$out/ratio$r/seed101"
    rows+=("+ ${r}x untranscribed audio=$out/ratio$r/seed101")
  done
  bg_wait || { tail -n 3 "$out"/ratio*.log; return 1; }
  python -m asr_kd teaching-table --rows "${rows[@]}" --teachers $(members) --ali-dir "$ali" --fbank-dir "$data/fbank" \
    --corpus "$corpus" --temperature "$temperature" --out "$nn/kd/table_5e_transfer" --results-md "$nn/kd/RESULTS.md" \
    --title "(5e) Untranscribed transfer audio: students on labelled + R x untranscribed frames (dev, T=$temperature)"
}
decode_all() {  # every baseline seed and every student seed is decoded (and tuned on dev) on its own
  local ens="$ensemble_size-model ensemble" stud="distilled student (T=$temperature)" models=("GMM ($(system_name "$labels"))=$ali/final.mdl")
  local m s
  for m in $(members); do models+=("baseline=$m"); done
  models+=("$ens=$(members | paste -sd, -)")
  for s in $(students "$nn/student_T$temperature" | tr , ' '); do models+=("$stud=$s"); done
  python -m asr_kd decode --ali-dir "$ali" --lang "$data/lang" --manifest-dir "$data/manifests" \
    --fbank-dir "$data/fbank" --corpus "$corpus" --graph-dir "$nn/graph" --out "$nn/decode" \
    --nj "$nj" --lmwt "$decode_lmwt" --wip "$decode_wip" $decode_opts --results-md "$nn/kd/RESULTS.md" --config "$config" \
    --models "${models[@]}" --compare "baseline|$ens" "baseline|$stud" "$ens|$stud" --gain-kept "baseline|$ens|$stud" \
    --title "$decode_title"
}
run_stage 13 decode      decode_all
k2_decode() {  # the k2 environment (Python 3.9, torch 1.13.1, k2 1.23.4), built by ./setup.sh (tools/k2_lane.sh --setup)
  local title="k2 vs. Kaldi decoder: same graph, same likelihoods (test set)" why=""
  if [ ! -x "$k2_python" ]; then
    if [ "${ASR_KD_NO_K2:-0}" = 1 ]; then
      why="k2 was opted out (ASR_KD_NO_K2=1 or ./setup.sh --no-k2)"
    elif [ -f "$k2_unavailable" ]; then
      why="./setup.sh could not build the k2 environment: $(head -c 300 "$k2_unavailable")"
    else
      echo "stage 14 needs the k2 environment ($k2_python): run ./setup.sh (or tools/k2_lane.sh --setup), or opt out with ASR_KD_NO_K2=1" >&2
      return 1
    fi
    echo "stage 14: no k2 decoding: $why" >&2
    python -m asr_kd decoder-agreement --absent "$why" --decode-dir "$nn/decode" --out "$nn/decode_k2/agreement" \
      --results-md "$nn/kd/RESULTS.md" --title "$title"
    return 0
  fi
  "$k2_python" -m asr_kd decoder-agreement --decode-dir "$nn/decode" --ali-dir "$ali" --lang "$data/lang" \
    --fbank-dir "$data/fbank" --corpus "$corpus" --graph-dir "$nn/graph" --out "$nn/decode_k2/agreement" \
    --results-md "$nn/kd/RESULTS.md" --title "$title" $k2_opts $( [ "$k2_members" = all ] || echo --members "$k2_members" )
}
run_stage 14 k2-decode   k2_decode
export_student() {  # stage 15 without the deployment table: the student shipped, and one test file transcribed with it
  local d=$nn/deploy stud="distilled student (T=$temperature)" example=$nn/kd/transcribe_example.txt wav
  mkdir -p "$d"
  python -m asr_kd export --config "$config" --ali-dir "$ali" --lang "$data/lang" --graph-dir "$nn/graph" \
    --fbank-dir "$data/fbank" --corpus "$corpus" $export_opts --name "$stud" --decode-dir "$nn/decode" \
    --out "$d/student" --checkpoints "$nn/student_T$temperature/seed101/best.pt" || return 1
  wav=$(python -m asr_kd example-audio --manifest-dir "$data/manifests" --corpus "$corpus" --split test) || return 1
  { echo "# python -m asr_kd transcribe --model-dir $d/student ${wav%%$'\t'*}"
    echo "# reference: ${wav#*$'\t'}"
    python -m asr_kd transcribe --model-dir "$d/student" "${wav%%$'\t'*}"; } > "$example.tmp" || return 1
  mv "$example.tmp" "$example" && cat "$example"
}
deploy() {  # stage 15: ship the systems (asr_kd.deploy) and measure what each costs to serve
  $deploy_table || { export_student; return; }
  local d=$nn/deploy small ens="$ensemble_size-model ensemble" stud="distilled student (T=$temperature)"
  mkdir -p "$d"
  small=$(( $(python -c "from asr_kd.utils.config import section; from asr_kd.nnet.models import ModelConfig; print(section('$config', 'model', ModelConfig).hidden)") / 4 ))
  # quarter-width networks, from hard labels and distilled from the ensemble (the paper: small models gain most);
  # trained under \$nn, exported to \$d (export replaces only its own model directories)
  bg_job "$nn/log/deploy_small_baseline.log" python -m asr_kd train-dnn "${dnn_args[@]}" --seed 1 --hidden "$small" \
    --out "$nn/small_baseline/seed1"
  train_students "$nn/soft_T$temperature" "$nn/small_student" 1 --temperature "$temperature" --hidden "$small" || \
    { tail -n 5 "$nn/log/deploy_small_baseline.log"; return 1; }  # its bg_wait waited for the baseline too
  python -m asr_kd decode --ali-dir "$ali" --lang "$data/lang" --manifest-dir "$data/manifests" \
    --fbank-dir "$data/fbank" --corpus "$corpus" --graph-dir "$nn/graph" --out "$d/decode_small" \
    --nj "$nj" --lmwt "$decode_lmwt" --wip "$decode_wip" $decode_opts --results-md "$nn/kd/RESULTS.md" \
    --models "small baseline (hidden $small)=$nn/small_baseline/seed1/best.pt" "small student (hidden $small)=$nn/small_student/seed101/best.pt" \
    --compare "small baseline (hidden $small)|small student (hidden $small)" \
    --title "Quarter-width networks (hidden $small): hard labels vs. distilled from the ensemble (T=$temperature)" || return 1
  local ex=(--config "$config" --ali-dir "$ali" --lang "$data/lang" --graph-dir "$nn/graph" --fbank-dir "$data/fbank"
            --corpus "$corpus" $export_opts)  # every system exported as a model directory, --nj at a time
  bg_job "$nn/log/export_ensemble.log" python -m asr_kd export "${ex[@]}" --name "$ens" --decode-dir "$nn/decode" \
    --out "$d/ensemble" --checkpoints $(members)
  bg_job "$nn/log/export_baseline.log" python -m asr_kd export "${ex[@]}" --name baseline --decode-dir "$nn/decode" \
    --out "$d/baseline" --checkpoints "$nn/dnn/seed1/best.pt"
  bg_job "$nn/log/export_student.log" python -m asr_kd export "${ex[@]}" --name "$stud" --decode-dir "$nn/decode" \
    --out "$d/student" --checkpoints "$nn/student_T$temperature/seed101/best.pt"
  bg_job "$nn/log/export_small_baseline.log" python -m asr_kd export "${ex[@]}" --name "small baseline" --decode-dir "$d/decode_small" \
    --out "$d/small_baseline" --checkpoints "$nn/small_baseline/seed1/best.pt"
  bg_job "$nn/log/export_small_student.log" python -m asr_kd export "${ex[@]}" --name "small student" --decode-dir "$d/decode_small" \
    --out "$d/small_student" --checkpoints "$nn/small_student/seed101/best.pt"
  bg_wait || { tail -n 5 "$nn"/log/export_*.log; return 1; }
  local cuts="$data/fbank/${corpus}_cuts_test.jsonl.gz"
  python -m asr_kd deploy-table --cuts "$cuts" --feature-cuts "$cuts" --streaming "$stud, ONNX" --parity "$stud, ONNX" \
    --systems "$ens=$d/ensemble:onnx" "baseline (seed 1)=$d/baseline:onnx" "$stud, PyTorch=$d/student:pt" \
              "$stud, ONNX=$d/student:onnx" "$stud, ONNX int8=$d/student:int8.onnx" \
              "small baseline (hidden $small)=$d/small_baseline:onnx" "small student (hidden $small)=$d/small_student:onnx" \
              "small student (hidden $small), int8=$d/small_student:int8.onnx" \
    --out "$d/deployment_table" --results-md "$nn/kd/RESULTS.md" \
    --title "Deployment: what each system costs to serve (test set, one thread)"
}
run_stage 15 deploy      deploy
compare_labels() {  # stage 16: every GMM system decoded; the network stages repeated on each of label_systems' labels
  local sys decoded=()
  for sys in $gmm_systems; do
    if [ "$sys" = "$labels" ]; then
      decoded+=("$sys=$nn/decode")  # stages 5-7, 13 and 14 did it
    elif [[ " $label_systems " == *" $sys "* ]]; then
      ( ali=$exp/$sys nn=$exp/labels_$sys labels=$sys
        mkdir -p "$nn/log" "$nn/kd"
        set_label_args
        train_ensemble && \
        python -m asr_kd soft-targets "${soft_args[@]}" --temperature "$temperature" --out "$nn/soft_T$temperature" && \
        train_students "$nn/soft_T$temperature" "$nn/student_T$temperature" "$student_seeds" --temperature "$temperature" && \
        decode_all && k2_decode ) || return 1
      decoded+=("$sys=$exp/labels_$sys/decode")
    else  # the GMM alone, on its own graph (exp/<system>/graph), with k2 beside Kaldi's decoder
      ( ali=$exp/$sys nn=$exp/$sys
        mkdir -p "$nn/kd"
        python -m asr_kd decode --ali-dir "$ali" --lang "$data/lang" --manifest-dir "$data/manifests" \
          --fbank-dir "$data/fbank" --corpus "$corpus" --graph-dir "$nn/graph" --out "$nn/decode" \
          --nj "$nj" --lmwt "$decode_lmwt" --wip "$decode_wip" $decode_opts --results-md "$nn/kd/RESULTS.md" \
          --models "GMM ($(system_name "$sys"))=$ali/final.mdl" --title "GMM ($(system_name "$sys"))" && k2_decode ) || return 1
      decoded+=("$sys=$exp/$sys/decode")
    fi
  done
  python -m asr_kd systems-table --exp "$exp" --decoded "${decoded[@]}" --out "$exp/kd/table_systems" \
    --results-md "$exp/kd/RESULTS.md" \
    --title "GMM systems (monophone, triphone trees) and the networks trained on their labels (test set)"
}
if [ "$gmm_systems" != mono ]; then  # an if, not &&: a false test as the file's last command would fail the sourcing run.sh
  run_stage 16 systems   compare_labels
fi
run_stage 17 teaching  teaching_compare  # opt-in: past the recipes' default --stop-stage
stage_key="$stage_key $transfer_ratios" run_stage 18 transfer transfer_compare  # opt-in, as 17
results_footer "$exp/kd/RESULTS.md" --example "$nn/kd/transcribe_example.txt"  # (the example when stage 15 made it)
