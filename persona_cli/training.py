"""Training the multi-task network on embeddings from several corpora that each label only some tasks.

A missing label (a Common Voice clip has no emotion, RAVDESS no age, "calm" is outside the six
emotions) is masked out of that task's loss only, so one model learns from all corpora at once
(aggregated-corpora multi-task learning, Kim et al. 2017). The paper's recipe (Adam at
1e-3, up to 20 epochs, early stopping on a validation part, learning-rate decay on plateau) is
still available through TrainConfig; the default is Adam at 2e-3 with cosine decay over 20 epochs
on every training speaker (docs/measurements.md, "Training recipe", has the measured effect),
loss = CE(emotion, class-balanced) + CE(gender) + MSE(standardised age).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from persona_cli.corpora import LabelledClip
from persona_cli.labels import EMOTIONS, GENDERS, MISSING, TASKS
from persona_cli.model import ModelMetadata, PersonaModel, PersonaNet
from persona_cli.normalization import input_width

log = logging.getLogger("persona")


@dataclass(frozen=True)  # shared instances (defaults, PAPER_RECIPE) must not change
class TrainConfig:
    """The training recipe: the paper's optimiser, epochs, early stopping and LR decay, with the
    regularisation that cross-validation on ../shared/data showed these small corpora need."""

    # The paper's CNN head is kept as an option: on GE2E embeddings it scored lower on RAVDESS
    # emotion than the dense head under the same recipe (docs/measurements.md, "Training recipe").
    head: str = "fcn"  # "fcn" (dense layers only) or "cnn" (the paper's conv + dense net)
    # Fixed-budget schedule. Early stopping on a held-out 15 % of the speakers stopped before the
    # emotion head had converged and cost RAVDESS some of its few actors; training on every speaker
    # for `epochs` with cosine decay from 2e-3 (and class-balanced emotion CE) scored better on every
    # corpus and task, over three seeds (docs/measurements.md, "Training recipe").
    epochs: int = 20  # with a validation part: an upper bound; without one: the training length
    learning_rate: float = 2e-3  # peak LR (Adam); 1e-3 and 3e-3 scored lower (docs/measurements.md)
    lr_schedule: str = "cosine"  # "cosine" (decay to 0 over `epochs`) or "plateau" (halve when validation stalls)
    batch_size: int = 32
    patience: int = 5  # epochs without validation improvement before stopping (needs a validation part)
    lr_patience: int = 2  # "plateau": epochs without improvement before the learning rate is halved
    validation_fraction: float = 0.0  # share of training speakers held out for early stopping (0: none)
    # RAVDESS has half as many neutral clips as each other emotion: weighting emotion CE by inverse
    # class frequency costs a little on the mean over seeds but lifts the worst seed
    # (docs/measurements.md, "Training recipe").
    balance_emotions: bool = True
    # Regularisation: without it the net overfits a few dozen speakers within a few epochs.
    # Together these lifted RAVDESS emotion, Common Voice gender and age (docs/measurements.md,
    # "Training recipe").
    dropout: float = 0.5
    weight_decay: float = 1e-2  # L2 penalty (Adam's weight_decay)
    input_noise: float = 0.5  # std of Gaussian noise added to the standardised embeddings while training
    # Every corpus weighs the same in each task's loss, however many clips it has, so the largest
    # corpus does not decide what an emotion sounds like.
    balance_corpora: bool = False
    # Weight of a corpus classifier trained against the trunk through gradient reversal (Ganin &
    # Lempitsky 2015): the shared features are pushed to stop telling the corpora apart. 0: off.
    corpus_adversarial: float = 0.0
    # The same against a speaker classifier over the training speakers with at least
    # ADVERSARY_MIN_CLIPS clips (Tran & Soleymani: keep emotion, drop identity). 0: off.
    speaker_adversarial: float = 0.0
    # Share of each emotion target spread over the other classes (Szegedy et al. 2016): a head that
    # must never be certain stays less over-confident on recordings unlike its training. 0: off.
    label_smoothing: float = 0.0
    # the features arrive already normalised (experiments.normalize_features); this records how, in the model
    normalization: str = "none"
    seed: int = 0


#: The paper's recipe as published (CNN head, Adam 1e-3, early stopping and LR decay on plateau),
#: without the regularisation and schedule these small corpora turned out to need: `--paper-recipe`.
PAPER_RECIPE = TrainConfig(
    head="cnn",
    learning_rate=1e-3,
    lr_schedule="plateau",
    validation_fraction=0.15,
    balance_emotions=False,
    dropout=0.3,
    weight_decay=0.0,
    input_noise=0.0,
)


@dataclass
class Targets:
    """Per-clip labels as arrays, MISSING / NaN where a clip has no label for that task."""

    emotion: np.ndarray  # int64 index into EMOTIONS or MISSING
    gender: np.ndarray  # int64 index into GENDERS or MISSING
    age: np.ndarray  # float32 years or NaN
    corpus: np.ndarray | None = None  # int64 index of each clip's corpus (sorted names), for balancing

    @classmethod
    def from_clips(cls, clips: Sequence[LabelledClip]) -> Targets:
        names = sorted({c.corpus for c in clips})
        return cls(
            emotion=np.array([EMOTIONS.index(c.emotion) if c.emotion else MISSING for c in clips], np.int64),
            gender=np.array([GENDERS.index(c.gender) if c.gender else MISSING for c in clips], np.int64),
            age=np.array([np.nan if c.age is None else c.age for c in clips], np.float32),
            corpus=np.array([names.index(c.corpus) for c in clips], np.int64),
        )

    def subset(self, index: np.ndarray) -> Targets:
        corpus = None if self.corpus is None else self.corpus[index]
        return Targets(self.emotion[index], self.gender[index], self.age[index], corpus)


@dataclass
class TrainingHistory:
    """Per-epoch losses, for learning-curve plots."""

    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)  # the early-stopping part, when there is one
    # the cross-validation test fold's loss after each epoch: watched, never acted on (no early stopping
    # or model choice reads it), so the curve shows over- or under-training without leaking into the score
    held_out_loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = 0


def speaker_holdout(speakers: Sequence[str], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of clips whose speaker is held out; about `fraction` of the clips, whole speakers only."""
    unique = np.array(sorted(set(speakers)))
    rng.shuffle(unique)
    counts = {s: 0 for s in unique}
    for s in speakers:
        counts[s] += 1
    held, total = set(), 0
    for speaker in unique:
        if total >= fraction * len(speakers):
            break
        held.add(speaker)
        total += counts[speaker]
    return np.array([s in held for s in speakers])


#: a feature whose training spread is below this is constant: the network cannot have learned from it
CONSTANT_FEATURE_STD = 1e-6
#: ... so its scale is set this large, which maps any value it takes later to ~0 instead of to a
#: huge z-score (GE2E has ReLU dimensions that are 0 on every training clip but not on all audio)
CONSTANT_FEATURE_SCALE = 1e6


def input_scale(train_features: np.ndarray) -> np.ndarray:
    """Per-feature std for standardising the network's input, constant features neutralised."""
    std = train_features.std(0)
    return np.where(std < CONSTANT_FEATURE_STD, CONSTANT_FEATURE_SCALE, std).astype(np.float32)


def trained_heads(targets: Targets) -> list[str]:
    """The tasks of which `targets` hold at least one label: the heads training on them can learn."""
    labelled = {
        "emotion": (targets.emotion != MISSING).any(),
        "gender": (targets.gender != MISSING).any(),
        "age": (~np.isnan(targets.age)).any(),
    }
    return [task for task in TASKS if labelled[task]]


def multitask_loss(
    outputs,
    targets: dict[str, torch.Tensor],
    emotion_weight: torch.Tensor | None = None,
    sample_weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """CE(emotion) + CE(gender) + MSE(age z-score), each a weighted mean over the clips that have that
    label; `emotion_weight` weights the emotion classes (as torch's CE does), `sample_weight` the clips."""
    emotion_logits, gender_logits, age_z = outputs
    weight = torch.ones_like(age_z) if sample_weight is None else sample_weight

    def weighted_mean(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return (losses * weights).sum() / weights.sum()

    loss = emotion_logits.new_zeros(())
    known = targets["emotion"] != MISSING
    if known.any():
        labels = targets["emotion"][known]
        class_weight = weight[known] if emotion_weight is None else weight[known] * emotion_weight[labels]
        losses = nn.functional.cross_entropy(
            emotion_logits[known], labels, reduction="none", label_smoothing=label_smoothing
        )
        loss = loss + weighted_mean(losses, class_weight)
    known = targets["gender"] != MISSING
    if known.any():
        losses = nn.functional.cross_entropy(gender_logits[known], targets["gender"][known], reduction="none")
        loss = loss + weighted_mean(losses, weight[known])
    known = ~torch.isnan(targets["age_z"])
    if known.any():
        loss = loss + weighted_mean((age_z[known] - targets["age_z"][known]) ** 2, weight[known])
    return loss


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -scale (gradient reversal)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


#: fewest training clips a speaker needs to be one of the speaker adversary's classes
ADVERSARY_MIN_CLIPS = 8


def speaker_classes(speakers: Sequence[str], corpus: np.ndarray) -> np.ndarray:
    """Each clip's speaker as a class index for the speaker adversary, -100 (ignored) for speakers with
    too few clips to be told apart (Common Voice's one or two)."""
    keys = [f"{c}/{s}" for c, s in zip(corpus, speakers)]
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    kept = sorted(k for k, n in counts.items() if n >= ADVERSARY_MIN_CLIPS)
    index = {k: i for i, k in enumerate(kept)}
    return np.array([index.get(k, -100) for k in keys], np.int64)


def corpus_weights(corpus: np.ndarray) -> np.ndarray:
    """Per-clip weights under which every corpus sums to the same total."""
    counts = np.bincount(corpus)
    weights = 1.0 / counts[corpus]
    return (weights * len(corpus) / weights.sum()).astype(np.float32)


def fit(
    features: np.ndarray,
    targets: Targets,
    speakers: Sequence[str],
    encoder: str,
    config: TrainConfig = TrainConfig(),
    training_summary: dict | None = None,
    held_out: tuple[np.ndarray, Targets] | None = None,
) -> tuple[PersonaModel, TrainingHistory]:
    """Train one model on the given clips (minus a speaker-disjoint validation part, if the config asks
    for early stopping); `held_out`: test features and targets whose loss is recorded after each epoch."""
    # The network is tiny and batches are small: splitting each op over threads costs more than it
    # saves (one thread trained several times faster than two on a 2-core machine: docs/measurements.md),
    # and it keeps runs reproducible.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(features, targets, speakers, encoder, config, training_summary, held_out)
    finally:
        torch.set_num_threads(threads)


def _fit(
    features: np.ndarray,
    targets: Targets,
    speakers: Sequence[str],
    encoder: str,
    config: TrainConfig,
    training_summary: dict | None,
    held_out: tuple[np.ndarray, Targets] | None,
) -> tuple[PersonaModel, TrainingHistory]:
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    validation = (
        speaker_holdout(speakers, config.validation_fraction, rng)
        if len(set(speakers)) > 1
        else np.zeros(len(speakers), bool)
    )
    train_index, validation_index = np.flatnonzero(~validation), np.flatnonzero(validation)

    known_age = targets.age[train_index][~np.isnan(targets.age[train_index])]
    age_mean = float(known_age.mean()) if known_age.size else 0.0
    age_std = float(known_age.std()) if known_age.size > 1 and known_age.std() > 0 else 1.0
    encoder_dim = features.shape[1] // input_width(1, config.normalization)
    metadata = ModelMetadata(
        encoder=encoder,
        encoder_dim=encoder_dim,
        head=config.head,
        normalization=config.normalization,
        age_mean=age_mean,
        age_std=age_std,
        training=training_summary or {},
        trained_heads=trained_heads(targets.subset(train_index)),
    )
    network = PersonaNet(features.shape[1], config.head, len(EMOTIONS), len(GENDERS), dropout=config.dropout)
    train_features = features[train_index]
    network.feature_mean.copy_(torch.from_numpy(train_features.mean(0)))
    network.feature_std.copy_(torch.from_numpy(input_scale(train_features)))

    def tensors(
        inputs: np.ndarray, labels: Targets, labels_speakers: Sequence[str]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        corpus = np.zeros(len(inputs), np.int64) if labels.corpus is None else labels.corpus
        return torch.from_numpy(inputs).float(), {
            "emotion": torch.from_numpy(labels.emotion),
            "gender": torch.from_numpy(labels.gender),
            "age_z": torch.from_numpy((labels.age - age_mean) / age_std).float(),
            "corpus": torch.from_numpy(corpus),
            "speaker": torch.from_numpy(speaker_classes(labels_speakers, corpus)),
            "weight": torch.from_numpy(
                corpus_weights(corpus) if config.balance_corpora else np.ones(len(inputs), np.float32)
            ),
        }

    train_x, train_y = tensors(train_features, targets.subset(train_index), [speakers[int(i)] for i in train_index])
    validation_x, validation_y = tensors(
        features[validation_index], targets.subset(validation_index), [speakers[int(i)] for i in validation_index]
    )
    if held_out is not None:
        held_out_x, held_out_y = tensors(*held_out, ["?"] * len(held_out[0]))
    n_corpora = int(train_y["corpus"].max()) + 1 if len(train_y["corpus"]) else 1
    use_adversary = config.corpus_adversarial > 0 and n_corpora > 1
    # built only when used: its initialisation would draw from the seeded generator the recipe relies on
    adversary = nn.Linear(network.emotion.in_features, n_corpora) if use_adversary else None
    n_speakers = int(train_y["speaker"].max()) + 1
    use_speaker_adversary = config.speaker_adversarial > 0 and n_speakers > 1
    speaker_adversary = nn.Linear(network.emotion.in_features, n_speakers) if use_speaker_adversary else None
    parameters = [
        *network.parameters(),
        *(adversary.parameters() if adversary is not None else ()),
        *(speaker_adversary.parameters() if speaker_adversary is not None else ()),
    ]
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler: torch.optim.lr_scheduler.CosineAnnealingLR | torch.optim.lr_scheduler.ReduceLROnPlateau
    if config.lr_schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=config.lr_patience)
    emotion_weight = None
    if config.balance_emotions:  # inverse class frequency over the training part; absent classes get 0
        known = train_y["emotion"][train_y["emotion"] != MISSING]
        counts = torch.bincount(known, minlength=len(EMOTIONS)).float()
        emotion_weight = torch.where(counts > 0, counts.sum() / (len(EMOTIONS) * counts.clamp_min(1)), torch.zeros(()))
    generator = torch.Generator().manual_seed(config.seed)
    history = TrainingHistory()
    best_state, best_loss, stale = None, float("inf"), 0  # early stopping, when a validation part exists

    for epoch in range(config.epochs):
        network.train()
        order = torch.randperm(len(train_x), generator=generator)
        epoch_loss = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            inputs = train_x[batch]
            if config.input_noise:
                noise = torch.randn(inputs.shape, generator=generator) * config.input_noise
                inputs = inputs + noise * network.feature_std
            batch_y = {k: v[batch] for k, v in train_y.items()}
            shared = network.shared(inputs)
            loss = multitask_loss(
                network.heads(shared), batch_y, emotion_weight, batch_y["weight"], config.label_smoothing
            )
            if adversary is not None:
                reversed_shared = _ReverseGradient.apply(shared, config.corpus_adversarial)
                loss = loss + nn.functional.cross_entropy(adversary(reversed_shared), batch_y["corpus"])
            if speaker_adversary is not None and (batch_y["speaker"] >= 0).any():
                reversed_shared = _ReverseGradient.apply(shared, config.speaker_adversarial)
                loss = loss + nn.functional.cross_entropy(
                    speaker_adversary(reversed_shared), batch_y["speaker"], ignore_index=-100
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item() * len(batch)
        history.train_loss.append(epoch_loss / len(order))
        history.learning_rate.append(optimizer.param_groups[0]["lr"])

        validation_loss = None
        if len(validation_index):
            network.eval()
            with torch.no_grad():
                validation_loss = float(multitask_loss(network(validation_x), validation_y))
            history.validation_loss.append(validation_loss)
        if held_out is not None:
            network.eval()
            with torch.no_grad():
                history.held_out_loss.append(float(multitask_loss(network(held_out_x), held_out_y)))
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):  # "cosine"
            scheduler.step()
        elif validation_loss is not None:
            scheduler.step(validation_loss)
        if validation_loss is None:  # nothing held out: train for the full budget, keep the last state
            history.best_epoch = epoch
            continue
        if validation_loss < best_loss - 1e-4:
            best_state, best_loss, stale, history.best_epoch = (
                copy.deepcopy(network.state_dict()),
                validation_loss,
                0,
                epoch,
            )
        else:
            stale += 1
            if stale >= config.patience:
                break
    log.debug("trained %d epochs, best %d", len(history.train_loss), history.best_epoch + 1)
    if best_state is not None:
        network.load_state_dict(best_state)
    return PersonaModel(network, metadata), history
