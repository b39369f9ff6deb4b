"""Trainer: MotionColBert on any data spec, selecting the checkpoint on validation (never test).

RUN/ layout:
  best/            checkpoint with the best validation mean(t2m R@5, m2t R@5)
  last/            checkpoint after the last finished epoch + optimizer.safetensors,
                   optimizer.json and trainer_state.json (for --resume)
  metrics.jsonl    one JSON line per epoch (losses, learning rates, samples/s, validation)

Data: one spec, or several (`--data SPEC[=WEIGHT]` repeated). An epoch holds as many samples
as all sources' training motions together, shared out between the sources by weight (a
source's motions are cycled in random order to fill its share). Validation uses each
source's own @val split (or --val); the checkpoint is selected on the mean over sources, and
metrics.jsonl logs each source. Each sample is mirrored with probability 0.5 (motion and
caption), with one of its captions drawn at random and a random 224-frame crop (and with
--posture-jitter, constant per-clip posture offsets: posture_jitter.py). Angle
statistics come from the training set (originals and mirrors) and go into the checkpoint.
Takes that share labels (e.g. Bandai's content and style) count as positives of each other
in the contrastive loss.
DDP: run under torchrun (`torchrun --nproc_per_node 2 -m inference_server train ...`);
each process takes its own shard of every epoch and --batch-size is per process
(the InfoNCE negatives are the process's own batch).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from inference_server.device import autocast_enabled
from inference_server.errors import DataError, T2MError

BEST, LAST = "best", "last"
METRICS_LOG = "metrics.jsonl"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_JSON = "optimizer.json"


@dataclass
class TrainOptions:
    data: str | list[str]              # one spec, or several "SPEC[=WEIGHT]"
    out: str
    val: str | None = None
    preset: str = "tiny"
    pooling: str = "maxsim"
    epochs: int | None = None          # None: the preset's default (as the batch size and rates)
    batch_size: int | None = None
    lr_motion: float | None = None
    lr_text: float | None = None
    lr_heads: float | None = None
    weight_decay: float = 0.1
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    mirror_prob: float = 0.5
    mlm_weight: float = 0.2
    mlm_captions: int = 16
    mask_punctuation: bool = False
    mask_padding: bool = True          # MaxSim/global skip padding-only windows (False: the paper's way)
    mask_stopwords: bool = False       # stop words ("a", "the", "person", ...) do not count in scores
    text_trainable_layers: int | None = None   # train only the top N text layers (default: the preset's)
    label_positives: bool = True       # same-label takes in a batch are positives of each other
    train_softness: float | None = None  # MaxSim's smooth max while training (None: the max)
    grounding_weight: float = 0.0      # side-grounding loss ("left hand" -> left arm); 0: off
    posture_jitter: float = 0.0        # scale of the per-clip posture offsets (posture_jitter.py); 0: off
    temperature: float | None = None   # initial temperature of the logit scale (default: the preset's)
    dim: int | None = None             # width of the shared token/patch space (default: the preset's)
    text_model: str | None = None      # override the preset's text model (name or folder)
    pretrained: bool | str = False     # ViT weights: False, True (timm hub) or a local file
    allow_download: bool = False
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"            # bf16 autocast: "auto" (CUDA only), "bf16" (also a bf16-capable CPU), "fp32"
    resume: bool = False
    ddp: bool = False
    progress: bool = True

    def resolved(self) -> "TrainOptions":
        """A copy with the preset's defaults filled in."""
        from inference_server.model.presets import get_preset
        preset = get_preset(self.preset)
        values = asdict(self)
        for key in ("epochs", "batch_size", "lr_motion", "lr_text", "lr_heads", "temperature"):
            if values[key] is None:
                values[key] = getattr(preset, key)
        return TrainOptions(**values)


# ---------------------------------------------------------------- distributed


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(requested: bool) -> DistInfo:
    """Join the torchrun process group when its environment is there (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        if requested:
            raise T2MError("--ddp needs the torchrun environment (WORLD_SIZE, RANK, MASTER_ADDR...): "
                           "run `torchrun --nproc_per_node N -m inference_server train ...`")
        return DistInfo()
    import torch.distributed as dist
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", init_method="env://")
    return info


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        torch.distributed.barrier()


# ---------------------------------------------------------------- data


@dataclass
class TrainingItem:
    views: list[np.ndarray]         # normalised (T, 29) angles: [original] or [original, mirrored]
    captions: list[list[str]]       # the captions of each view
    groups: list[str] | None = None  # per view: a label key shared by takes of one action, else unique


@dataclass
class Source:
    spec: str                       # the data spec, without its weight
    weight: float
    train: list                     # captioned MotionItems of its training split
    val: list                       # captioned MotionItems of its validation split (may be empty)


def sources_of(data: str | list[str]) -> list[tuple[str, float]]:
    """'SPEC' or ['SPEC=WEIGHT', ...] -> [(spec, weight)]; a spec without a weight weighs 1."""
    sources = []
    for entry in [data] if isinstance(data, str) else list(data):
        spec, equals, tail = entry.rpartition("=")
        try:
            weight = float(tail) if equals else None
        except ValueError:
            weight = None                # an '=' inside the spec itself
        if weight is None:
            spec, weight = entry, 1.0
        if not weight > 0 or not math.isfinite(weight):
            raise DataError(f"--data {entry!r}: the weight must be a positive number")
        sources.append((spec, weight))
    if not sources:
        raise DataError("no training data: pass --data SPEC")
    return sources


def load_splits(options: TrainOptions) -> list[Source]:
    """Each --data source's captioned train and val motions (val from --val when given)."""
    from inference_server.data import load_spec, parse_spec
    val_items = None
    if options.val:
        val_items = _captioned(load_spec(options.val, progress=options.progress), "validation", "(pass --val SPEC)")
    sources, specs = [], sources_of(options.data)
    for spec, weight in specs:
        dataset = load_spec(spec, progress=options.progress)
        unsplit = set(dataset.splits()) == {"none"}
        if options.val or (unsplit and len(specs) > 1):
            # with --val, or a source without splits (DeepMimic) in a mix: all of it trains
            train, own_val = dataset, val_items or []
        elif parse_spec(spec).split:
            raise DataError(f"data spec {spec!r} names a split: pass --val for validation")
        else:
            train, own_val = dataset.split("train"), _captioned(dataset.split("val"), "validation",
                                                               "(pass --val SPEC)")
        sources.append(Source(spec, weight, _captioned(train, "training", ""), own_val))
    if not any(source.val for source in sources):
        raise DataError("no source has a validation split: pass --val SPEC")
    return sources


def _captioned(dataset, role: str, hint: str) -> list:
    items = [item for item in dataset.items if item.captions]
    if len(items) < 2:
        raise DataError(f"{dataset.spec}: {len(items)} captioned {role} motions; need at least 2 {hint}".rstrip())
    return items


def label_group(item, mirrored: bool) -> str:
    """Takes of one labelled action share a key (content + style); other motions get their own."""
    labels = item.labels or {}
    if "content" not in labels:
        return f"id:{item.id}"
    return f"{labels['content']}|{labels.get('style', '')}|{'mirror' if mirrored else 'original'}"


def prepare_training(items, mirror_prob: float, stats=None, progress: bool = False):
    """Angles of every item (and its mirror) -> (list[TrainingItem], AngleStats of the raw angles)."""
    from tqdm import tqdm

    from inference_server.angles import motion_angles
    from inference_server.jami import AngleStats
    from inference_server.motion import mirror_caption
    raw = []
    for item in tqdm(items, desc="angles", disable=not progress, file=sys.stderr):
        views = [motion_angles(item.motion)]
        captions = [list(item.captions)]
        groups = [label_group(item, False)]
        if mirror_prob > 0:
            views.append(motion_angles(item.motion.mirrored()))
            captions.append([mirror_caption(text) for text in item.captions])
            groups.append(label_group(item, True))
        raw.append((views, captions, groups))
    stats = stats or AngleStats.compute([view for views, _, _ in raw for view in views])
    prepared = [TrainingItem([stats.normalize(view) for view in views], captions, groups)
                for views, captions, groups in raw]
    return prepared, stats


def sample_batch(items: list[TrainingItem], indices, rng: np.random.Generator, mirror_prob: float,
                 jitter: tuple[float, np.ndarray] | None = None):
    """One training batch: (angles (B, 224, 29) float32, captions, positives (B, B) bool) with
    random view/caption/crop; positives marks the pairs of samples with one label group.
    jitter: (scale, the angle stats' std) to add posture offsets (posture_jitter.py) to each clip."""
    from inference_server.jami import crop_or_pad
    from inference_server.posture_jitter import jitter_window, posture_offsets
    windows, captions, groups = [], [], []
    for index in indices:
        item = items[index]
        view = 1 if len(item.views) > 1 and rng.random() < mirror_prob else 0
        window, valid = crop_or_pad(item.views[view], rng)
        if jitter is not None:
            scale, std = jitter
            jitter_window(window, valid, posture_offsets(rng, scale), std)
        windows.append(window)
        options = item.captions[view]
        captions.append(options[int(rng.integers(len(options)))])
        groups.append(item.groups[view] if item.groups else f"#{index}")
    keys = np.array(groups, dtype=object)
    return np.stack(windows), captions, keys[:, None] == keys[None, :]


def epoch_order(sizes: list[int], weights: list[float], seed: int, epoch: int) -> np.ndarray:
    """Indices into the concatenated sources for one epoch: sum(sizes) samples shared out by
    weight, each source's motions cycled in random order to fill its share, then shuffled."""
    rng = np.random.default_rng([seed, epoch])
    total, offsets = sum(sizes), np.cumsum([0, *sizes])
    shares = np.floor(np.asarray(weights) / sum(weights) * total).astype(int)
    shares[np.argmax(weights)] += total - shares.sum()
    picked = []
    for size, share, offset in zip(sizes, shares, offsets):
        cycles = [rng.permutation(size) for _ in range(-(-share // size))] or [np.zeros(0, dtype=int)]
        picked.append(np.concatenate(cycles)[:share] + offset)
    return rng.permutation(np.concatenate(picked))


def epoch_batches(sizes: list[int], weights: list[float], batch_size: int, seed: int, epoch: int,
                  info: DistInfo) -> list[np.ndarray]:
    """This process's batches of an epoch: one shared order, sharded by rank, equal lengths."""
    order = epoch_order(sizes, weights, seed, epoch)
    count = len(order)
    shard = order[info.rank::info.world][: count // info.world]
    batches = [shard[start:start + batch_size] for start in range(0, len(shard), batch_size)]
    return [batch for batch in batches if len(batch) >= 2]   # InfoNCE needs negatives


# ---------------------------------------------------------------- optimisation


def build_optimizer(model, options: TrainOptions) -> torch.optim.AdamW:
    """AdamW, one learning rate per part (motion encoder, text encoder, heads); no decay on
    biases, norms, position embeddings and the CLS token."""
    rates = {"motion": options.lr_motion, "text": options.lr_text, "heads": options.lr_heads}
    groups = []
    for part, named in model.param_groups().items():
        decay = [p for n, p in named if p.ndim > 1 and not n.endswith(("pos_embed", "cls_token"))]
        no_decay = [p for n, p in named if not (p.ndim > 1 and not n.endswith(("pos_embed", "cls_token")))]
        for params, weight_decay in ((decay, options.weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "lr": rates[part], "base_lr": rates[part],
                               "weight_decay": weight_decay, "part": part})
    return torch.optim.AdamW(groups)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up to 1, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def save_optimizer(optimizer, folder: Path) -> None:
    """Optimizer state without pickle: tensors -> safetensors, the rest -> JSON."""
    from safetensors.torch import save_file
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, entries in state["state"].items():
        for key, value in entries.items():
            target = tensors if torch.is_tensor(value) else scalars
            target[f"{param_id}/{key}"] = value.detach().cpu().contiguous() if torch.is_tensor(value) else value
    save_file(tensors, str(folder / OPTIMIZER_TENSORS))
    (folder / OPTIMIZER_JSON).write_text(json.dumps({"param_groups": state["param_groups"], "scalars": scalars}))


def load_optimizer(optimizer, folder: Path) -> None:
    from safetensors.torch import load_file
    meta = json.loads((folder / OPTIMIZER_JSON).read_text())
    state: dict[int, dict] = {}
    entries = list(load_file(str(folder / OPTIMIZER_TENSORS)).items()) + list(meta["scalars"].items())
    for key, value in entries:
        param_id, name = key.split("/", 1)
        state.setdefault(int(param_id), {})[name] = value
    groups = [{**group, "betas": tuple(group["betas"])} for group in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------- validation


def validation_inputs(items, stats) -> tuple[np.ndarray, list[str]]:
    """First 224 frames and first caption of each validation motion (the All protocol)."""
    from inference_server.jami import jami_input
    return np.stack([jami_input(item.motion, stats)[0] for item in items]), [item.captions[0] for item in items]


def validate(model, device, inputs: np.ndarray, captions: list[str]) -> dict:
    from inference_server.metrics import retrieval_metrics
    from inference_server.retriever import Retriever
    retriever = Retriever(model, device)
    scores = retriever.score_embeddings(retriever.embed_texts(captions), retriever.embed_inputs(inputs))
    model.train()
    return retrieval_metrics(scores, protocol="all")


def selection_score(metrics: dict) -> float:
    return 0.5 * (metrics["t2m"]["R@5"] + metrics["m2t"]["R@5"])


def validate_sources(model, device, val_sets: dict[str, tuple]) -> tuple[dict, float]:
    """Metrics of each source's validation set and their mean selection score."""
    metrics = {name: validate(model, device, *inputs) for name, inputs in val_sets.items()}
    return metrics, float(np.mean([selection_score(m) for m in metrics.values()]))


# ---------------------------------------------------------------- the loop


class Trainer:
    def __init__(self, options: TrainOptions):
        self.info = init_distributed(options.ddp)
        self.out = Path(options.out)
        resume_state = self._resume_state(options)
        self.options = self._resumed_options(resume_state["options"], options) if resume_state \
            else options.resolved()
        self.device = self._device()
        self.autocast = autocast_enabled(self.options.precision, self.device)
        self.state = resume_state or {"epoch": 0, "step": 0, "best_score": -1.0, "best_val": None}

    def _resume_state(self, options: TrainOptions) -> dict | None:
        last = Path(options.out) / LAST
        if not options.resume:
            if last.exists() or (Path(options.out) / BEST).exists():
                raise T2MError(f"{options.out} already holds a run: pass --resume to continue it, "
                               "or choose another --out")
            return None
        if not (last / TRAINER_STATE).is_file():
            raise T2MError(f"--resume: {last} holds no trainer state to resume from")
        return json.loads((last / TRAINER_STATE).read_text())

    @staticmethod
    def _resumed_options(saved: dict, given: TrainOptions) -> TrainOptions:
        """The run's stored options; only the device, precision, the progress bars and a larger --epochs
        (training longer; the cosine schedule then stretches) come from the command line."""
        epochs = given.epochs if given.epochs is not None else saved["epochs"]
        return TrainOptions(**{**saved, "device": given.device, "progress": given.progress,
                               "precision": given.precision,
                               "epochs": epochs, "resume": True})

    def _device(self) -> torch.device:
        from inference_server.retriever import resolve_device
        device = resolve_device(self.options.device)
        if device.type == "cuda" and self.info.enabled:
            device = torch.device("cuda", self.info.local_rank)
            torch.cuda.set_device(device)
        return device

    def run(self) -> dict | None:
        options = self.options
        _seed_everything(options.seed + self.info.rank)
        sources = load_splits(options)
        model, stats = self._model()
        train_items = [item for source in sources for item in source.train]
        items, stats = prepare_training(train_items, options.mirror_prob, stats,
                                        options.progress and self.info.main)
        model.angle_stats = stats
        self.jitter = (options.posture_jitter, stats.std) if options.posture_jitter > 0 else None
        val_sets = self._val_sets(sources, stats)
        optimizer = build_optimizer(model, options)
        if options.resume:
            load_optimizer(optimizer, self.out / LAST)
        wrapped = self._wrap(model)
        self.mix = ([len(source.train) for source in sources], [source.weight for source in sources])
        steps_per_epoch = len(epoch_batches(*self.mix, options.batch_size, options.seed, 0, self.info))
        if steps_per_epoch == 0:
            raise DataError(f"{options.data}: too few training motions for batches of 2 or more per process")
        total = steps_per_epoch * options.epochs
        warmup = max(1, int(options.warmup_fraction * total))
        if self.info.main:
            self.out.mkdir(parents=True, exist_ok=True)
        for epoch in range(self.state["epoch"], options.epochs):
            log = self._train_epoch(wrapped, model, optimizer, items, epoch, total, warmup)
            self._end_epoch(model, optimizer, stats, epoch, log, val_sets)
        if not self.info.main:
            return None
        return {"checkpoint": str(self.out / BEST), "best_val": self.state["best_val"], "run": str(self.out),
                "epochs": options.epochs, "train_motions": len(items),
                "val_motions": sum(len(inputs[1]) for inputs in val_sets.values()),
                "samples_per_s": self.state.get("samples_per_s"),
                "final_logit_scale": round(float(model.log_scale.detach().exp()), 3)}

    def _val_sets(self, sources: list[Source], stats) -> dict[str, tuple]:
        """name -> (inputs, captions): one shared set with --val, else each source's own."""
        if self.options.val:
            return {self.options.val: validation_inputs(sources[0].val, stats)}
        return {source.spec: validation_inputs(source.val, stats) for source in sources if source.val}

    def _model(self):
        from inference_server.jami import PART_CHANNEL_INDEX
        from inference_server.model.checkpoint import load_model
        from inference_server.model.colbert import MotionColBert
        from inference_server.model.presets import get_preset, preset_from_dict
        options = self.options
        if options.resume:
            model = load_model(self.out / LAST, self.device).train()
            model.text.freeze_below(preset_from_dict(model.config.preset).text_trainable_layers)
            return model, model.angle_stats
        preset = get_preset(options.preset, text_model=options.text_model, dim=options.dim,
                            text_trainable_layers=options.text_trainable_layers)
        model = MotionColBert.build(preset, PART_CHANNEL_INDEX, options.pooling, options.pretrained,
                                    options.allow_download, options.mask_punctuation,
                                    options.mlm_weight, options.mlm_captions, options.mask_padding,
                                    options.temperature, options.mask_stopwords, options.train_softness,
                                    options.grounding_weight)
        return model.to(self.device).train(), None

    def _wrap(self, model):
        if not self.info.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.index] if self.device.type == "cuda" else None
        # without MLM the MLM head takes no part in the loss
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=self.options.mlm_weight == 0)

    def _train_epoch(self, wrapped, model, optimizer, items, epoch, total, warmup) -> dict:
        from tqdm import tqdm
        options = self.options
        rng = np.random.default_rng([options.seed, epoch, self.info.rank])
        torch.manual_seed(options.seed * 100_003 + epoch * 101 + self.info.rank)
        generator = torch.Generator().manual_seed(options.seed * 7919 + epoch * 13 + self.info.rank)
        batches = epoch_batches(*self.mix, options.batch_size, options.seed, epoch, self.info)
        sums, samples, started = {"loss": 0.0, "contrastive": 0.0, "mlm": 0.0, "grounding": 0.0}, 0, time.perf_counter()
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{options.epochs}", file=sys.stderr,
                   disable=not (options.progress and self.info.main))
        for indices in bar:
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * lr_factor(self.state["step"], total, warmup)
            out = self._step(wrapped, model, optimizer, items, indices, rng, generator)
            for key in sums:
                sums[key] += out[key] * len(indices)
            samples += len(indices)
            self.state["step"] += 1
            speed = samples * self.info.world / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{out['loss']:.3f}", samples_s=f"{speed:.1f}")
        seconds = time.perf_counter() - started
        log = {key: value / max(1, samples) for key, value in sums.items()}
        log.update(seconds=round(seconds, 3), samples_per_s=samples * self.info.world / max(seconds, 1e-9),
                   logit_scale=float(model.log_scale.detach().exp()),
                   lr={g["part"]: g["lr"] for g in optimizer.param_groups})
        return log

    def _step(self, wrapped, model, optimizer, items, indices, rng, generator) -> dict:
        options = self.options
        from inference_server.model.grounding_loss import grounding_targets
        angles, captions, positives = sample_batch(items, indices, rng, options.mirror_prob, self.jitter)
        tokens = model.text.tokenize(captions)
        device = self.device
        mlm = [None, None, None]
        count = min(options.mlm_captions, len(captions))
        if options.mlm_weight > 0 and count > 0:
            masked, labels = model.text.mask_tokens(tokens.input_ids[:count], tokens.special_mask[:count], generator)
            mlm = [masked.to(device), tokens.attention_mask[:count].to(device), labels.to(device)]
        grounding = None
        if options.grounding_weight > 0:
            pieces = [model.text.tokenizer.convert_ids_to_tokens(row) for row in tokens.input_ids.tolist()]
            grounding = grounding_targets(pieces, tokens.valid_mask).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = wrapped(torch.from_numpy(angles).to(device), tokens.input_ids.to(device),
                          tokens.attention_mask.to(device), tokens.valid_mask.to(device), *mlm,
                          torch.from_numpy(positives).to(device) if options.label_positives else None, grounding)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], options.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {"loss": float(out["loss"].detach()), "contrastive": float(out["contrastive"]),
                "mlm": 0.0 if out["mlm"] is None else float(out["mlm"]),
                "grounding": 0.0 if out["grounding"] is None else float(out["grounding"])}

    def _end_epoch(self, model, optimizer, stats, epoch, log, val_sets) -> None:
        """Rank 0 validates (each source) and writes best/ and last/; the others wait."""
        from inference_server.model.checkpoint import save_checkpoint
        if self.info.main:
            per_source, score = validate_sources(model, self.device, val_sets)
            # one source: its metrics as they are; several: {spec: metrics}
            metrics = next(iter(per_source.values())) if len(per_source) == 1 else per_source
            improved = score > self.state["best_score"]
            self.state.update(epoch=epoch + 1, samples_per_s=log["samples_per_s"])
            training = self._training_record(epoch, metrics)
            if improved:
                self.state.update(best_score=score, best_val=metrics, best_epoch=epoch + 1)
                save_checkpoint(model, self.out / BEST, stats, training=training)
            save_checkpoint(model, self.out / LAST, stats, training=training,
                            extras=lambda folder: self._write_resume_files(folder, optimizer))
            with open(self.out / METRICS_LOG, "a") as handle:
                handle.write(json.dumps({"epoch": epoch + 1, "step": self.state["step"], **log,
                                         "val": metrics, "val_score": score, "best": improved}) + "\n")
        _barrier(self.info)
        self.state["epoch"] = epoch + 1

    def _training_record(self, epoch: int, metrics: dict) -> dict:
        return {"trained": True, "epoch": epoch + 1, "step": self.state["step"], "val": metrics,
                "options": asdict(self.options), "world_size": self.info.world}

    def _write_resume_files(self, folder: Path, optimizer) -> None:
        save_optimizer(optimizer, folder)
        state = {**self.state, "options": asdict(self.options)}
        (folder / TRAINER_STATE).write_text(json.dumps(state, indent=2))


def _seed_everything(seed: int) -> None:
    import random
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(options: TrainOptions) -> dict | None:
    """Train; returns {"checkpoint", "best_val", ...} on rank 0 (None on the other ranks)."""
    return Trainer(options).run()


def options_from_args(args) -> TrainOptions:
    names = {f.name for f in fields(TrainOptions)}
    values = {key: value for key, value in vars(args).items() if key in names}
    if isinstance(values.get("data"), list) and len(values["data"]) == 1:
        values["data"] = values["data"][0]
    return TrainOptions(**values)
