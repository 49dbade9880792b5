#!/usr/bin/env bash
# Rebuild the models that ship in the package: for each, leave-one-corpus-out over every labelled
# corpus in ../shared/data (report in runs/bundled-NAME/; the softmax temperatures it fits go into the
# model), then a final model on all of it, copied into persona_cli/models/. Read speech (Common
# Voice, LibriSpeech) trains as neutral (--weak-neutral). Seeded: the same data gives the same
# figures to within ~0.5 points run to run.
#
#   persona-ge2e-layers+prosody            the default
#   persona-ge2e-layers+prosody-speaker    `persona predict --normalize speaker`
#   persona-ge2e-layers+prosody-corpus     `persona predict --normalize corpus`
#   persona-ge2e                           `persona predict --encoder ge2e`: faster, less accurate on emotion
set -euo pipefail
cd "$(dirname "$0")/.."
data=${PERSONA_SHARED_DATA:-../shared/data}
corpora=(ravdess emodb ased urdu baved commonvoice librispeech)
train() {  # train ENCODER NORMALIZATION
    local name="$1"
    [ "$2" = none ] || name="$name-$2"
    persona train "${corpora[@]/#/$data/}" --encoder "$1" --normalize "$2" --split corpus \
        --weak-neutral commonvoice --weak-neutral librispeech --name "persona-$name" --overwrite -o "runs/bundled-$name" "${extra[@]}"
    cp "runs/bundled-$name/persona-$name.safetensors" persona_cli/models/
}
extra=("$@")
train ge2e-layers+prosody none
train ge2e-layers+prosody speaker
train ge2e-layers+prosody corpus
train ge2e none
