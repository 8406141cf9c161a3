"""`bertcls train`'s checks and config overrides, before it hands over to `spacy train`.

Which sections are `bert_textcat` components (by factory, whatever their name), the overrides
that `--freeze-encoder`, `--class-weights` and `--encoder` make, where the corpora are and
whether they exist, that `--output` will not overwrite an input, and an evaluation frequency
that lets a short run save a model-best.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .errors import BertclsError


def training_data_paths(config: Path, overrides: dict[str, Any]) -> dict[str, Path]:
    """The --paths.train and --paths.dev corpora that the config reads; each must exist."""
    from spacy.util import load_config

    paths = load_config(config, overrides=overrides, interpolate=False).get("paths", {})
    found = {}
    for name in ("train", "dev"):
        value = paths.get(name)
        if value is None or str(value).strip() in ("", "null", "None"):
            raise BertclsError(
                f"No {name} data: pass --paths.{name} corpus/{name}.spacy (or set [paths] "
                f"{name} in {config}). Make the .spacy files from a labeled table with "
                "`bertcls convert TABLE --text-column ... --label-column ... --output corpus`."
            )
        path = Path(str(value))
        if "${" not in str(value) and not path.exists():
            raise BertclsError(
                f"The {name} data {path} (--paths.{name}) does not exist. Make it from a labeled "
                "table with `bertcls convert TABLE --text-column ... --label-column ... --output "
                f"{path.parent}`, which writes train.spacy, dev.spacy and test.spacy."
            )
        found[f"--paths.{name}"] = path
    return found


def check_training_output(output: Path, inputs: dict[str, Path]) -> None:
    """Raise BertclsError if --output is a file, or if training would write over an input.

    Training writes the pipelines model-last and model-best into --output, replacing them.
    """
    from .outputs import check_output_folder

    written = [output.resolve()] + [(output / name).resolve() for name in MODEL_DIRS]
    for name, path in inputs.items():
        target = path.resolve()
        if target in written or any(folder in target.parents for folder in written[1:]):
            raise BertclsError(
                f"--output {output}: training writes {' and '.join(MODEL_DIRS)} there, which "
                f"would overwrite {name} {path}. Choose another --output."
            )
    check_output_folder(output, option="--output")


MODEL_DIRS = ("model-last", "model-best")


def calibrate_training_output(output: Path, dev: Path) -> dict[str, str]:
    """Calibrate the pipelines `spacy train` wrote into ``output`` on the dev corpus, in place
    (`spacy_bertcls.calibration.calibrate_saved_pipeline`). Returns {folder name: what was
    fitted}, or why not: a dev set too small to fit on leaves the training as it is."""
    from .calibration import TooFewRows, calibrate_saved_pipeline

    done = {}
    for name in MODEL_DIRS:
        if (output / name).is_dir():
            try:
                done[name] = calibrate_saved_pipeline(output / name, dev).format()
            except TooFewRows as error:
                done[name] = f"not calibrated: {error}"
    return done


def eval_frequency_for_short_runs(
    config: Path, overrides: dict[str, Any]
) -> tuple[int | None, str]:
    """A smaller eval_frequency when training ends before its first evaluation after step 0.

    spaCy evaluates (and saves model-best) only every eval_frequency steps, starting after the
    first step; a run shorter than eval_frequency would keep that barely trained model as
    model-best. Here training is evaluated about ten times instead. Returns (None, "") when
    the config's value is fine or the run length cannot be known (batch size schedules, no
    epoch limit, a training file that is not a .spacy file).
    """
    from spacy.tokens import DocBin
    from spacy.util import load_config

    cfg = load_config(config, overrides=overrides, interpolate=True)
    training = cfg["training"]
    size = training.get("batcher", {}).get("size")
    train_path = cfg.get("paths", {}).get("train")
    max_epochs, max_steps = training.get("max_epochs", 0), training.get("max_steps", 0)
    if not isinstance(size, int) or not train_path or max_epochs <= 0:
        return None, ""
    if not str(train_path).endswith(".spacy") or not Path(train_path).is_file():
        return None, ""
    n_train = len(DocBin().from_disk(train_path))
    steps_per_epoch = max(1, -(-n_train // size))
    total = max_epochs * steps_per_epoch
    if max_steps > 0:
        total = min(total, max_steps)
    frequency = training["eval_frequency"]
    if total >= frequency:
        return None, ""
    new = max(1, -(-total // 10))  # about ten evaluations, the last within the final tenth
    return new, (
        f"Training takes about {total} steps ({n_train:,} texts, batches of {size}, "
        f"{max_epochs} epochs), fewer than eval_frequency = {frequency}: evaluating every "
        f"{new} steps instead, so that model-best is a trained model. Pass "
        "--training.eval_frequency to choose."
    )


def bert_textcat_sections(config: Path) -> list[str]:
    """The config sections of the components made by the bert_textcat factory, whatever they
    are called (``components.bert_textcat``, ``components.sentiment``, ...)."""
    from spacy.util import load_config

    components = load_config(config, interpolate=False).get("components", {})
    return [
        f"components.{name}"
        for name, block in components.items()
        if isinstance(block, dict) and block.get("factory") == "bert_textcat"
    ]


def training_overrides(
    freeze_encoder: str, class_weights: str, encoder: str, sections: list[str]
) -> dict[str, Any]:
    """Config overrides of every bert_textcat component's settings (``sections``, from
    ``bert_textcat_sections``); "auto" leaves the config's value."""
    settings: dict[str, Any] = {}
    freeze = freeze_encoder.strip().lower()
    if freeze in ("true", "1", "yes"):
        settings["freeze_encoder"] = True
    elif freeze in ("false", "0", "no"):
        settings["freeze_encoder"] = False
    elif freeze != "auto":
        raise BertclsError(f"--freeze-encoder {freeze_encoder!r}: use true, false or auto.")
    if class_weights != "auto":
        settings["class_weights"] = parse_class_weights(class_weights)
    if encoder != "auto":
        settings["model.encoder"] = encoder
    if settings and not sections:
        options = ("--freeze-encoder", "--class-weights", "--encoder")
        raise BertclsError(
            f"{', '.join(options)} set bert_textcat settings, but the config has no component "
            'made by factory = "bert_textcat". Leave them at auto, or add the component.'
        )
    return {f"{section}.{key}": value for section in sections for key, value in settings.items()}


def parse_class_weights(value: str) -> str | dict[str, float] | None:
    """ "balanced", "none"/"null", JSON, or "spam=3,ham=1" -> the class_weights setting.

    Every weight must be a finite number above 0 (a NaN, infinite, zero or negative weight
    would wreck or silently disable the loss).
    """
    value = value.strip()
    usage = (
        f"--class-weights {value!r}: use balanced, none, or label=weight pairs such as spam=3,ham=1"
    )
    if value.lower() == "balanced":
        return "balanced"
    if value.lower() in ("none", "null", ""):
        return None
    if value.startswith("{"):
        try:
            weights = json.loads(value)
        except json.JSONDecodeError as error:
            raise BertclsError(f"--class-weights {value!r} is not valid JSON: {error}") from None
        if not isinstance(weights, dict):
            raise BertclsError(f"{usage}, or a JSON object.")
        pairs = list(weights.items())
    else:
        pairs = []
        for part in value.split(","):
            label, sep, weight = part.partition("=")
            if not sep or not label.strip():
                raise BertclsError(f"{usage}.")
            try:
                pairs.append((label.strip(), float(weight)))
            except ValueError:
                raise BertclsError(f"{usage}; {weight.strip()!r} is not a number.") from None
    result: dict[str, float] = {}
    for label, weight in pairs:
        number = isinstance(weight, int | float) and not isinstance(weight, bool)
        if not number or not math.isfinite(weight) or weight <= 0:
            raise BertclsError(
                f"--class-weights: the weight of {label!r} is {weight!r}; a weight must be a "
                "number above 0, such as spam=3,ham=1."
            )
        if label in result:
            raise BertclsError(f"--class-weights {value!r} gives {label!r} twice.")
        result[label] = float(weight)
    return result
