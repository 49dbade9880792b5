#!/usr/bin/env bash
# Rebuild the models that ship in the package: for each, speaker-grouped 5-fold CV on every labelled
# corpus in ../shared/data (report in runs/bundled-NAME/), then a final model on all of it, copied
# into persona_cli/models/. Deterministic: the same data gives the same figures and weights.
#
#   persona-ge2e-layers+prosody+mfcc            the default
#   persona-ge2e-layers+prosody+mfcc-speaker    `persona predict --normalize speaker`
#   persona-ge2e-layers+prosody+mfcc-corpus     `persona predict --normalize corpus`
#   persona-ge2e                                `persona predict --encoder ge2e`: faster, less accurate on emotion
set -euo pipefail
cd "$(dirname "$0")/.."
data=${PERSONA_SHARED_DATA:-../shared/data}
train() {  # train ENCODER NORMALIZATION
    local name="$1"
    [ "$2" = none ] || name="$name-$2"
    persona train "$data/ravdess" "$data/emodb" "$data/commonvoice" --encoder "$1" --normalize "$2" \
        --folds 5 --out "runs/bundled-$name" "${extra[@]}"
    cp "runs/bundled-$name/persona-$name.safetensors" persona_cli/models/
}
extra=("$@")
train ge2e-layers+prosody+mfcc none
train ge2e-layers+prosody+mfcc speaker
train ge2e-layers+prosody+mfcc corpus
train ge2e none
