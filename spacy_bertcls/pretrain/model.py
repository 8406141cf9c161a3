"""The model: the device, the encoder with its masked-language-model head, the loss, the
held-out perplexity and the optimizer with its learning-rate schedule."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import BertclsError
from .settings import PretrainSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

#: The learning rate rises linearly over this fraction of the (whole-model) steps, then falls
#: linearly to 0 at the last step.
WARMUP_FRACTION = 0.06


def torch_device(gpu_id: int) -> torch.device:
    """The torch device for spaCy's gpu_id convention: -1 the CPU, 0 the first GPU, ...

    Pre-training runs in torch alone, so unlike ``bertcls train`` it needs no CuPy.
    """
    import torch

    if gpu_id < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = (
            "no NVIDIA GPU with a working driver was found"
            if torch.version.cuda
            else "the installed torch is a CPU-only build"
        )
        raise BertclsError(
            f"--device {gpu_id}: cannot pre-train on a GPU: {why}. On a machine with an NVIDIA "
            "GPU, install a CUDA build of torch (https://pytorch.org/get-started/locally/), or "
            "pass --device -1 to pre-train on the CPU."
        )
    count = torch.cuda.device_count()
    if gpu_id >= count:
        raise BertclsError(
            f"--device {gpu_id}: this machine has {count} GPU(s), numbered from 0 to {count - 1}."
        )
    return torch.device("cuda", gpu_id)


def load_masked_lm(source: str, *, local: bool) -> tuple[PreTrainedModel, bool]:
    """The encoder with a masked-language-model head, and whether that head is new (random):
    a sentence-transformers checkpoint, such as the embedded MiniLM, ships without one."""
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the missing head is reported in our own words
    try:
        model, info = AutoModelForMaskedLM.from_pretrained(
            source,
            local_files_only=local,
            trust_remote_code=False,
            use_safetensors=True,
            output_loading_info=True,
        )
    except (OSError, ValueError) as error:
        raise BertclsError(
            f"Could not load {source} with a masked-language-model head: {error}"
        ) from error
    finally:
        hf_logging.set_verbosity(verbosity)
    prefix = model.base_model_prefix
    head_was_new = any(not key.startswith(prefix + ".") for key in info["missing_keys"])
    return model, head_was_new


def masked_positions_head(model: PreTrainedModel, batch: dict[str, torch.Tensor]):
    """The head module to run on the masked positions alone, or None for the full forward.

    A masked-language-model forward computes vocabulary logits for every word piece; only the
    15 % that are masked matter, so running the head on those alone is about 2.5 times faster
    on a CPU (MiniLM-L6). This works where the model is its encoder plus one head module
    (BERT, RoBERTa, ...); it is checked against the full forward on ``batch``.
    """
    import torch

    base = model.base_model
    others = [module for _, module in model.named_children() if module is not base]
    if len(others) != 1:
        return None
    head = others[0]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            fast, count = masked_loss_sum(model, head, batch)
            full, _ = masked_loss_sum(model, None, batch)
        ok = count > 0 and torch.allclose(fast, full, rtol=1e-4, atol=1e-3)
    except (TypeError, ValueError, RuntimeError, IndexError):
        ok = False
    finally:
        model.train(was_training)
    return head if ok else None


def masked_loss_sum(
    model: PreTrainedModel, head, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, int]:
    """The summed cross-entropy over the masked word pieces, and how many there are."""
    import torch.nn.functional as F

    labels = batch["labels"]
    chosen = labels != -100
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if head is not None:
        hidden = model.base_model(**inputs)[0]
        logits = head(hidden[chosen])
        targets = labels[chosen]
    else:
        logits = model(**inputs).logits
        logits, targets = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    loss = F.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum")
    return loss, int(chosen.sum())


def heldout_perplexity(
    model: PreTrainedModel, head, batches: list[dict[str, torch.Tensor]], device: torch.device
) -> float:
    """exp(mean loss per masked word piece) over the held-out batches (masked once, so every
    measurement sees the same masks)."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for batch in batches:
            loss, n = masked_loss_sum(model, head, {k: v.to(device) for k, v in batch.items()})
            total += float(loss)
            count += n
    model.train()
    if count == 0:
        return float("nan")
    return math.exp(min(total / count, 700.0))


def make_optimizer(model: PreTrainedModel, settings: PretrainSettings):
    """AdamW, with no weight decay on biases and LayerNorm weights (as BERT was trained)."""
    import torch

    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.learn_rate)


def learning_rate(step: int, settings: PretrainSettings) -> float:
    """The learning rate of step ``step`` (0-based): constant head_learn_rate during the head
    warm-up; then a linear rise over WARMUP_FRACTION of the remaining steps and a linear fall
    to 0 at max_steps."""
    if step < settings.head_warmup_steps:
        return settings.head_learn_rate
    total = settings.max_steps - settings.head_warmup_steps
    done = step - settings.head_warmup_steps
    warmup = max(1, round(WARMUP_FRACTION * total))
    if done < warmup:
        return settings.learn_rate * (done + 1) / warmup
    return settings.learn_rate * max(0.0, (total - done) / max(1, total - warmup))


def set_head_only(model: PreTrainedModel, head_only: bool) -> None:
    """Freeze (or unfreeze) the encoder, so that only the head trains."""
    for param in model.base_model.parameters():
        param.requires_grad_(not head_only)
