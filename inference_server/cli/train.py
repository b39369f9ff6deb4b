"""`t2m train`, `t2m eval`, `t2m explain`: training, evaluation and explanation of MotionColBert."""
from __future__ import annotations

import argparse
from pathlib import Path

from inference_server.cli import CliError, add_json_flag, add_progress_flag
from inference_server.data import parse_spec
from inference_server.default import model_dir
from inference_server.model.identity import check_checkpoint
from inference_server.model.presets import POOLINGS, PRESETS

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")  # inference_server.device.autocast_enabled reads them
MODEL_HELP = ("checkpoint folder, or an embedded model: default (the default; non-commercial, trained on "
              "real mocap) or permissive (no non-commercial data: synthetic + DeepMimic)")


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_eval(subparsers)
    _register_explain(subparsers)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The training options of `t2m train` (torchrun runs `-m inference_server train ...`)."""
    parser.add_argument("--data", required=True, action="append", metavar="SPEC[=WEIGHT]",
                        help="training data spec (trains on its @train split and validates on @val unless --val "
                        "is given); repeat it for a mix sampled by weight (default weight 1), e.g. "
                        "--data bandai:DIR=2 --data synthetic:4000:0:rich=1")
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder: best/, last/, metrics.jsonl")
    parser.add_argument("--val", metavar="SPEC", help="validation data spec (default: the @val split of --data)")
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny", help="model size (default tiny)")
    parser.add_argument("--pooling", choices=POOLINGS, default="maxsim",
                        help="token-patch MaxSim (the method), the global-pooling baseline, or hybrid "
                        "(their mean; MaxSim's alignments)")
    parser.add_argument("--epochs", type=int, help="epochs (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="motions per step and process (default: the preset's)")
    parser.add_argument("--lr-motion", type=float, help="learning rate of the motion encoder")
    parser.add_argument("--lr-text", type=float, help="learning rate of the text encoder")
    parser.add_argument("--lr-heads", type=float, help="learning rate of the projections and the logit scale")
    parser.add_argument("--temperature", type=float,
                        help="initial temperature of the learnable logit scale (default: the preset's, 0.07)")
    parser.add_argument("--dim", type=int, help="width of the shared token/patch space (default: the preset's)")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--warmup-fraction", type=float, default=0.05, help="share of steps in linear warm-up")
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--mirror-prob", type=float, default=0.5, help="probability of a mirrored sample")
    parser.add_argument("--mlm-weight", type=float, default=0.2, help="weight of the masked-LM loss (0: off)")
    parser.add_argument("--mlm-captions", type=int, default=16, help="captions per batch used by the MLM loss")
    parser.add_argument("--mask-punctuation", action="store_true", help="punctuation tokens do not count in scores")
    parser.add_argument("--mask-stopwords", action="store_true",
                        help="stop words (a, the, person, with, ...) do not count in scores")
    parser.add_argument("--text-trainable-layers", type=int, metavar="N",
                        help="train only the top N text-encoder layers (default: the preset's; all)")
    parser.add_argument("--train-softness", type=float, metavar="S",
                        help="train MaxSim with a smooth max (softmax over patches at softness S, e.g. 0.05); "
                        "search always uses the max")
    parser.add_argument("--grounding-weight", type=float, default=0.0, metavar="W",
                        help="weight of the side-grounding loss: a side word next to a limb word ('left hand') "
                        "aligns to that limb on that side (default 0: off)")
    parser.add_argument("--posture-jitter", type=float, default=0.0, metavar="S",
                        help="add a constant posture offset per clip (soft knees, head and shoulder placement; "
                             "ranges in inference_server/posture_jitter.py) scaled by S, against rig and actor "
                             "differences between sources (default 0: off)")
    parser.add_argument("--no-label-positives", dest="label_positives", action="store_false",
                        help="treat other takes of the same labelled action in a batch as negatives")
    parser.add_argument("--no-mask-padding", dest="mask_padding", action="store_false",
                        help="let words match the zero-padded windows of short clips too (the paper's way)")
    parser.add_argument("--text-model", help="Hugging Face masked-LM name or folder instead of the preset's")
    parser.add_argument("--pretrained", nargs="?", const=True, default=False, metavar="FILE",
                        help="start the ViT from timm's pretrained weights (downloads) or from a local FILE")
    parser.add_argument("--allow-download", action="store_true",
                        help="allow fetching a text model by hub name (never done otherwise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN/last with its stored options (a larger --epochs trains longer)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="bf16 autocast of the forward pass: auto = on CUDA only; bf16 = also on a CPU "
                        "with native bf16 (AVX512-BF16/AMX, ~1.5-2x faster); fp32 = never")
    parser.add_argument("--ddp", action="store_true", help="distributed data parallel under torchrun")
    add_progress_flag(parser)
    add_json_flag(parser)


def _register_train(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train MotionColBert; keeps the best checkpoint on validation",
                                   description="Train on a data spec; RUN/best is the checkpoint with the best "
                                   "validation mean R@5 (t2m, m2t), RUN/last resumes.")
    add_train_arguments(parser)
    parser.set_defaults(handler=run_train)


def _register_eval(subparsers) -> None:
    from inference_server.metrics import PROTOCOLS
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on a data spec",
                                   description="Every captioned motion of SPEC with its first caption "
                                   "(the All protocol's pairs), scored by the checkpoint.")
    parser.add_argument("--model", metavar="CKPT", help=MODEL_HELP)
    parser.add_argument("--data", required=True, metavar="SPEC", help="data spec, e.g. humanml3d:DIR@test")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="all")
    parser.add_argument("--nsim", metavar="IDS.txt", help="dissimilar protocol: motion ids, one per line")
    parser.add_argument("--threshold", type=float, help="threshold protocol: caption cosine (default 0.9)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-order", dest="ordered", action="store_false",
                        help="score captions of several steps ('A, then B') like one-step ones, "
                        "not order-aware as search does")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--markdown", action="store_true", help="print the metrics as a Markdown table")
    add_progress_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(handler=run_eval)


def _register_explain(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="token x body part x time relevance picture",
                                   description="Which body parts, when, each word of TEXT matches in MOTION_FILE.")
    parser.add_argument("text", metavar="TEXT")
    parser.add_argument("motion_file", metavar="MOTION_FILE", help=".bvh, .npy (HumanML3D) or DeepMimic .json")
    parser.add_argument("--model", metavar="CKPT", help=MODEL_HELP)
    parser.add_argument("--out", required=True, metavar="X.png", help="heat map picture to write")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    add_json_flag(parser)
    parser.set_defaults(handler=run_explain)


def run_train(args: argparse.Namespace) -> dict | None:
    if args.epochs is not None and args.epochs < 1:
        raise CliError("--epochs must be at least 1")
    if args.batch_size is not None and args.batch_size < 2:
        raise CliError("--batch-size must be at least 2 (the contrastive loss needs negatives)")
    from inference_server.train import options_from_args, train
    return train(options_from_args(args))


def run_eval(args: argparse.Namespace) -> dict | None:
    from inference_server.cli.metrics import metrics_output
    model = _checkpoint(args.model)
    parse_spec(args.data)
    from inference_server.evaluate import evaluate
    result = evaluate(model, args.data, args.protocol, args.device, args.batch_size,
                      nsim_file=args.nsim, threshold=args.threshold, progress=args.progress, ordered=args.ordered)
    return metrics_output(result, args)


def run_explain(args: argparse.Namespace) -> dict | None:
    model = _checkpoint(args.model)
    if not Path(args.motion_file).is_file():
        raise CliError(f"{args.motion_file}: no such motion file")
    from inference_server.explain import explain_file
    return explain_file(args.text, args.motion_file, model, args.out, args.device)


def _checkpoint(model: str | None) -> Path:
    """--model: a checkpoint folder or an embedded model's name; none: the embedded default."""
    return check_checkpoint(model_dir(model))
