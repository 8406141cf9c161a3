"""Checkpoints (OUT/checkpoints/step-NNNNNN): written atomically, read back, found for
--resume, and the signature a run must share with one to continue it."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..encoder import refuse_custom_code
from ..errors import BertclsError
from ..fingerprint import text_hashes
from ..outputs import write_error
from .settings import PretrainSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "trainer_state.json"  # inside a checkpoint: step, settings, optimizer groups
TENSORS_FILE = "training_state.safetensors"  # inside a checkpoint: optimizer moments, RNGs


def checkpoints(out: Path) -> list[Path]:
    """The complete checkpoints in ``out``, oldest first."""
    folder = Path(out) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = [
        path
        for path in folder.glob("step-*")
        if path.is_dir() and (path / STATE_FILE).is_file() and path.name[5:].isdigit()
    ]
    return sorted(found, key=lambda path: int(path.name[5:]))


def write_checkpoint(
    out: Path,
    step: int,
    model: PreTrainedModel,
    optimizer,
    generator,
    state: dict[str, Any],
) -> Path:
    """Write a checkpoint atomically (a hidden folder renamed when complete), then delete the
    older ones. An interrupt while writing leaves the previous checkpoint as it was."""
    import torch
    from safetensors.torch import save_file

    folder = out / CHECKPOINTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:06d}"
    tmp = folder / f".step-{step:06d}.tmp-{secrets.token_hex(4)}"
    optimizer_state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.masking"] = generator.get_state()
    if torch.cuda.is_available() and next(model.parameters()).is_cuda:
        tensors["rng.cuda"] = torch.cuda.get_rng_state(next(model.parameters()).device)
    state = {
        **state,
        "step": step,
        "optimizer": {"param_groups": optimizer_state["param_groups"], "scalars": scalars},
    }
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        save_file(tensors, str(tmp / TENSORS_FILE))
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf8")
        _sync_folder(tmp)
        if not final.exists():
            os.rename(tmp, final)
    except OSError as error:
        raise write_error(final, error) from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for old in checkpoints(out):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A checkpoint's state (JSON) and tensors (optimizer moments, random states)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not (path / STATE_FILE).is_file() or not (path / TENSORS_FILE).is_file():
        raise BertclsError(
            f"{path} is not a pre-training checkpoint (it lacks {STATE_FILE} or "
            f"{TENSORS_FILE}). Give a folder OUT/{CHECKPOINTS_DIR}/step-N, or --resume no."
        )
    refuse_custom_code(path)
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf8"))
        tensors = load_file(str(path / TENSORS_FILE))
    except (ValueError, OSError, SafetensorError) as error:
        raise BertclsError(
            f"The checkpoint {path} is damaged ({error}). Delete it to continue from an older "
            "one, or pass --resume no to start over."
        ) from error
    return state, tensors


def restore_optimizer(optimizer, state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    saved = state["optimizer"]
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            per_param.setdefault(int(index), {})[key] = value
    for name, value in saved["scalars"].items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": saved["param_groups"]})


def _sync_folder(folder: Path) -> None:
    """Flush a folder's files to the disk before it is renamed into place."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as file:
                os.fsync(file.fileno())


def find_checkpoint(out: Path, resume: str) -> Path | None:
    """The checkpoint to continue from: "auto" the latest in OUT (None if there is none),
    "no" none (the checkpoints in OUT are deleted), or a checkpoint folder."""
    if resume == "auto":
        found = checkpoints(out)
        return found[-1] if found else None
    if resume == "no":
        shutil.rmtree(out / CHECKPOINTS_DIR, ignore_errors=True)
        return None
    path = Path(resume)
    if not path.is_dir():
        raise BertclsError(
            f"--resume {resume}: no such checkpoint folder. Use auto (the latest checkpoint in "
            f"--out), no (start over) or a folder OUT/{CHECKPOINTS_DIR}/step-N."
        )
    return path


def run_signature(
    source: str, settings: PretrainSettings, train: Sequence[str], heldout: Sequence[str]
) -> dict[str, Any]:
    """What a checkpoint must share with a run to be continued by it."""

    def digest(texts: Sequence[str]) -> str:
        return hashlib.sha256(text_hashes(texts).tobytes()).hexdigest()[:16]

    return {
        "encoder": source,
        "training texts": digest(train),
        "held-out texts": digest(heldout),
        "whole_word": settings.whole_word,
        "mlm_probability": settings.mlm_probability,
        "max_length": settings.max_length,
        "batch_size": settings.batch_size,
        "seed": settings.seed,
        "head_warmup_steps": settings.head_warmup_steps,
    }


def check_signature(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    differ = [key for key in current if saved.get(key) != current[key]]
    if differ:
        shown = "; ".join(f"{key}: {saved.get(key)!r} then, {current[key]!r} now" for key in differ)
        raise BertclsError(
            f"The checkpoint {path} belongs to a run with other settings or texts ({shown}). "
            "Run with the same ones to continue it, pass --resume no to start over (its "
            "checkpoints are deleted), or choose another --out."
        )
