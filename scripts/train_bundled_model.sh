#!/usr/bin/env bash
# Rebuild the model that ships in the package: speaker-grouped 5-fold CV on every labelled corpus
# in ../shared/data (report in runs/bundled-ge2e/), then a final model on all of it, copied into
# persona_cli/models/. Deterministic: the same data gives the same figures and weights.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${PERSONA_SHARED_DATA:-../shared/data}
persona train "$data/ravdess" "$data/emodb" "$data/commonvoice" --encoder ge2e --folds 5 \
    --out runs/bundled-ge2e "$@"
cp runs/bundled-ge2e/persona-ge2e.safetensors persona_cli/models/persona-ge2e.safetensors
