"""Training the reference network on preprocessed synthetic studies, deterministically.

Mini-batches without augmentation, plus *modality dropout*: each present modality of a
training sample is hidden (tensor zeroed, presence 0) with probability
``modality_dropout``, keeping at least one, so the network learns every subset of modalities.
Loss: cross-entropy on the diagnosis plus ``severity_weight`` × smooth-L1 on
``log1p(mL)`` plus ``aux_weight`` × the cross-entropy of each present modality's own
diagnosis head (deep supervision, when the network has ``forward_train``). AdamW with a
one-cycle schedule. The weights of the epoch with the best
validation macro AUROC (ties: lower validation loss) are kept.

Determinism: fixed seeds (torch, NumPy generator for the split and the dropout),
``torch.use_deterministic_algorithms(True)`` and a fixed thread count.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import UsageError
from medfuse.models.data import StudySet
from medfuse.models.metrics import classification_metrics
from medfuse.models.nets import build_model
from medfuse.models.specs import CLASSES

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "evaluate", "split_by_study", "train"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (its hash goes into the bundle)."""

    config: str = "reference"
    epochs: int = 36
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    modality_dropout: float = 0.15
    severity_weight: float = 0.5
    aux_weight: float = 0.5
    val_fraction: float = 0.2
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise UsageError(
                f"epochs ({self.epochs}) must be >= 1 and batch size ({self.batch_size}) >= 2"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise UsageError(f"val fraction {self.val_fraction} must be in [0, 1)")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise UsageError(f"modality dropout {self.modality_dropout} must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash(self) -> str:
        """sha256 of the canonical JSON of the config (thread count excluded: it does not
        change what is learned)."""
        d = self.to_dict()
        d.pop("threads")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class EpochStats:
    """One epoch's training loss and validation figures."""

    epoch: int
    train_loss: float
    val_loss: float
    val_auroc: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """The trained network (best epoch's weights, eval mode), its spec, metrics and history."""

    module: nn.Module
    spec: ModelSpec
    config: TrainConfig
    metrics: dict[str, Any]
    history: tuple[EpochStats, ...] = field(default_factory=tuple)


def split_by_study(
    data: StudySet, fraction: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Stratified (by diagnosis) split of study rows into (train, validation) indices."""
    rng = np.random.default_rng([seed, 7])
    train_idx: list[int] = []
    val_idx: list[int] = []
    for c in np.unique(data.diagnosis):
        rows = np.flatnonzero(data.diagnosis == c)
        rows = rows[rng.permutation(len(rows))]
        n_val = round(fraction * len(rows))
        if fraction > 0 and len(rows) > 1:
            n_val = min(max(n_val, 1), len(rows) - 1)
        val_idx += rows[:n_val].tolist()
        train_idx += rows[n_val:].tolist()
    return np.sort(np.asarray(train_idx, dtype=np.int64)), np.sort(
        np.asarray(val_idx, dtype=np.int64)
    )


def _batch(data: StudySet, spec: ModelSpec, rows: NDArray[np.int64]) -> dict[str, Tensor]:
    return {
        i.name: torch.from_numpy(data.inputs[i.name][rows].astype(np.float32)) for i in spec.inputs
    }


def _drop_modalities(
    batch: dict[str, Tensor], spec: ModelSpec, p: float, rng: np.random.Generator
) -> None:
    """Hide present modalities at random (in place), keeping at least one per sample."""
    if p <= 0 or spec.presence_input is None:
        return
    presence = batch[spec.presence_input.name]
    present = presence.numpy() > 0.5
    drop = (rng.random(present.shape) < p) & present
    all_gone = ~(present & ~drop).any(axis=1)
    for row in np.flatnonzero(all_gone):  # give back one of the dropped ones
        candidates = np.flatnonzero(present[row])
        if len(candidates):
            drop[row, candidates[rng.integers(len(candidates))]] = False
    for col, image in enumerate(spec.image_inputs):
        rows = np.flatnonzero(drop[:, col])
        if len(rows):
            batch[image.name][torch.from_numpy(rows)] = 0.0
            presence[torch.from_numpy(rows), col] = 0.0


def _loss(out: tuple[Tensor, Tensor], diagnosis: Tensor, severity_ml: Tensor, w: float) -> Tensor:
    logits, severity = out
    target = torch.log1p(severity_ml.clamp_min(0.0)).unsqueeze(1)
    ce = nn.functional.cross_entropy(logits, diagnosis)
    return ce + w * nn.functional.smooth_l1_loss(severity, target)


def _aux_loss(aux: Tensor, diagnosis: Tensor, presence: Tensor) -> Tensor:
    """Cross-entropy of each present modality's own diagnosis logits (deep supervision)."""
    b, m, c = aux.shape
    per = nn.functional.cross_entropy(
        aux.reshape(b * m, c), diagnosis.repeat_interleave(m), reduction="none"
    )
    weight = (presence > 0.5).to(per.dtype).reshape(-1)
    return (per * weight).sum() / weight.sum().clamp_min(1.0)


def evaluate(
    module: nn.Module, spec: ModelSpec, data: StudySet, batch_size: int = 32
) -> tuple[dict[str, Any], float]:
    """Metrics of ``module`` on ``data`` (AUROC, accuracy, severity MAE in mL) and its mean loss."""
    module.eval()
    logits, sev, losses = [], [], []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            rows = np.arange(start, min(start + batch_size, len(data)))
            out = module(**_batch(data, spec, rows))
            loss = _loss(
                out,
                torch.from_numpy(data.diagnosis[rows]),
                torch.from_numpy(data.severity_ml[rows]),
                0.5,
            )
            losses.append(float(loss) * len(rows))
            logits.append(out[0].numpy())
            sev.append(out[1].numpy())
    if not logits:
        return {"n": 0}, float("nan")
    metrics = classification_metrics(
        data.diagnosis, np.concatenate(logits), np.concatenate(sev), data.severity_ml, CLASSES
    )
    return metrics, sum(losses) / len(data)


def train(
    cfg: TrainConfig,
    data: StudySet,
    *,
    heldout: StudySet | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Train ``cfg.config`` on ``data`` (split by study into train/validation).

    Parameters
    ----------
    cfg:
        The run's settings; the same settings and data give the same weights.
    data:
        Preprocessed labelled studies (:func:`~medfuse.models.data.prepare_studies`).
    heldout:
        An independent set (other patients, other seed) evaluated once with the final weights.
    on_epoch:
        Called after each epoch with its :class:`EpochStats` (progress display).

    Returns
    -------
    TrainResult
        Best-epoch network and ``metrics`` with ``"validation"`` and, if given, ``"heldout"``.
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    module, spec = build_model(cfg.config)
    train_rows, val_rows = split_by_study(data, cfg.val_fraction, cfg.seed)
    if len(train_rows) < 2:
        raise UsageError(
            f"only {len(train_rows)} training studies after the split; generate more studies"
        )
    train_set, val_set = data.subset(train_rows), data.subset(val_rows)
    logger.info(
        "training %s on %d studies, validating on %d", cfg.config, len(train_set), len(val_set)
    )
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.2
    )
    rng = np.random.default_rng([cfg.seed, 11])
    best: tuple[float, float] = (-1.0, math.inf)
    best_state = copy.deepcopy(module.state_dict())
    best_epoch = 0
    history: list[EpochStats] = []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        module.train()
        order = rng.permutation(len(train_set))
        total = 0.0
        for step in range(steps_per_epoch):
            rows = np.sort(order[step * cfg.batch_size : (step + 1) * cfg.batch_size]).astype(
                np.int64
            )
            if len(rows) < 2:  # batch norm needs two samples
                continue
            batch = _batch(train_set, spec, rows)
            _drop_modalities(batch, spec, cfg.modality_dropout, rng)
            target = torch.from_numpy(train_set.diagnosis[rows])
            severity_ml = torch.from_numpy(train_set.severity_ml[rows])
            forward_train = getattr(module, "forward_train", None)
            if forward_train is not None and spec.presence_input is not None:
                logits, severity, aux = forward_train(**batch)
                loss = _loss((logits, severity), target, severity_ml, cfg.severity_weight)
                presence = batch[spec.presence_input.name]
                loss = loss + cfg.aux_weight * _aux_loss(aux, target, presence)
            else:
                loss = _loss(module(**batch), target, severity_ml, cfg.severity_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(rows)
        val_metrics, val_loss = (
            evaluate(module, spec, val_set) if len(val_set) else ({}, float("nan"))
        )
        val_auroc = float(val_metrics.get("auroc_macro", float("nan")))
        stats = EpochStats(
            epoch, total / len(train_set), val_loss, val_auroc, time.perf_counter() - start
        )
        history.append(stats)
        logger.info(
            "epoch %d: train loss %.4f, val loss %.4f, val AUROC %.4f",
            epoch,
            stats.train_loss,
            val_loss,
            val_auroc,
        )
        score = (
            val_auroc if not math.isnan(val_auroc) else 0.0,
            val_loss if not math.isnan(val_loss) else 0.0,
        )
        if not len(val_set) or score[0] > best[0] or (score[0] == best[0] and score[1] < best[1]):
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(module.state_dict())
        if on_epoch is not None:
            on_epoch(stats)
    module.load_state_dict(best_state)
    module.eval()
    metrics: dict[str, Any] = {"best_epoch": best_epoch, "train_studies": len(train_set)}
    if len(val_set):
        metrics["validation"] = evaluate(module, spec, val_set)[0]
    if heldout is not None and len(heldout):
        metrics["heldout"] = evaluate(module, spec, heldout)[0]
    torch.use_deterministic_algorithms(False)
    return TrainResult(module, spec, cfg, metrics, tuple(history))
