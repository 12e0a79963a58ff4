"""The configuration of a ``jmlp train`` run: each setting from the command line, else
``--config FILE`` (an earlier run's config.json, checked as the command line checks its options),
else the preset of the built-in data set, else ``DEFAULTS``; and the settings a resume must find
unchanged."""

import argparse
from pathlib import Path
from typing import Any

from jmlp import runs
from jmlp.cli.options import UsageError
from jmlp.cli.train_data import MNIST, built_in
from jmlp.cli.train_options import DEFAULTS, PRESETS, option_types

TRAINING = tuple(k for k in DEFAULTS if k != "epochs")  # the settings that fix the trajectory


def read_config(path: Path, option: str = "--config") -> dict[str, Any]:
    """The settings saved in a run's config.json (a JSON object), each checked as the command
    line checks its option; ValueError naming the file, the setting and the fix."""
    fix = (
        "restore it, or start a new run"
        if option == "--resume"
        else "give the config.json of an earlier run"
    )
    try:
        saved = runs.read_config(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{option}: no file {path}") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{option}: {path} is not readable JSON ({err}); {fix}") from None
    if not isinstance(saved, dict):
        raise TypeError(
            f"{option}: {path} holds a JSON {type(saved).__name__}, not an object of settings; "
            f"{fix}"
        )
    types = option_types()
    for key, value in saved.items():
        if key not in types or (value is None and (DEFAULTS[key] is None or key == "target")):
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        try:
            kind, choices = types[key]
            saved[key] = kind(text) if kind is not None else text
            if not isinstance(value, (str, int, float, list)) or (
                choices is not None and saved[key] not in choices
            ):
                raise argparse.ArgumentTypeError(f"expected one of {list(choices or ())}")
        except argparse.ArgumentTypeError as err:
            raise ValueError(
                f"{option}: {path}: {key!r} is {value!r}: {err} (as --{key.replace('_', '-')}); "
                "correct it in the file"
            ) from None
    return saved


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """Each setting from the command line, else ``--config``, else the preset, else DEFAULTS.
    ``--resume FOLDER`` is ``--config FOLDER/config.json`` where only ``--epochs`` may change."""
    option = "--config"
    if args.resume is not None:
        _check_resume_options(args)
        args = argparse.Namespace(**{**vars(args), "config": runs.config_path(args.resume)})
        option = "--resume"
    saved = {} if args.config is None else read_config(args.config, option)
    name = args.data if args.data is not None else saved.get("data")
    if name is None:
        raise UsageError("train: --data is required (or --config FILE)")
    if not isinstance(name, str):
        raise TypeError(f"{option}: {args.config}: 'data' is {name!r}, not a name or a path")
    for option in ("target", "delimiter"):
        if built_in(name) and getattr(args, option) is not None:
            raise ValueError(
                f"--{option}: applies to a CSV/NPZ file, not the built-in set {name!r}"
            )
    preset = PRESETS.get("mnist" if name.startswith(MNIST) else name, {})
    cfg = {"data": name}
    for key in DEFAULTS:
        value = getattr(args, key)
        for source in (saved, preset, DEFAULTS):
            if value is None and key in source:
                value = source[key]
        cfg[key] = tuple(value) if isinstance(value, list) else value
    if cfg["feedback_seed"] is None:
        cfg["feedback_seed"] = cfg["seed"]
    if cfg["rule"] != "backprop" and cfg["gradient"] != "backprop":
        raise ValueError(f"--rule {cfg['rule']}: runs its own backward pass; give --gradient "
                         f"backprop, got {cfg['gradient']}")  # fmt: skip
    return cfg


def _check_resume_options(args: argparse.Namespace) -> None:
    """UsageError for any option but ``--epochs`` beside ``--resume``; an error if its folder
    holds no run."""
    given = [key for key in (*DEFAULTS, "data", "config", "out") if getattr(args, key) is not None]
    given = [f"--{key.replace('_', '-')}" for key in given if key != "epochs"]
    given += ["--overwrite"] if args.overwrite else []
    if given:
        raise UsageError(
            f"train: --resume continues a run with its own settings; only --epochs may change, "
            f"got {', '.join(given)}"
        )
    if not args.resume.is_dir():
        raise FileNotFoundError(f"--resume: no run folder {args.resume}")
    if not runs.config_path(args.resume).is_file():
        raise FileNotFoundError(
            f"--resume: {args.resume} has no {runs.CONFIG}, so no run was started there; start "
            f"one with jmlp train ... --out {args.resume} --overwrite"
        )


def training_settings(cfg: dict[str, Any], parts: dict) -> dict[str, Any]:
    """What a resume must find unchanged (training.json): the settings of ``cfg`` that fix the
    training trajectory, the layer sizes, and the training and validation arrays. The learning
    rule and its feedback seed are left out for backprop, so a folder written before they
    existed (which lacks them) resumes as backprop."""
    arrays = [a for part in ("train", "validation") if part in parts for a in parts[part]]
    settings = {k: cfg[k] for k in (*TRAINING, "sizes")}
    if settings["rule"] == "backprop":  # recorded as the folders from before --rule record it
        del settings["rule"], settings["feedback_seed"]
    return runs.training_record(settings, arrays)
