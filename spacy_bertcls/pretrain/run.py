"""The run: check OUT, train step by step (with checkpoints, resuming, Ctrl+C) and write
OUT/encoder."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..encoder import check_model_dir, load_pretrained, resolve_encoder
from ..errors import BertclsError
from ..outputs import check_output_folder, make_output_folder, write_error
from .checkpoints import (
    CHECKPOINTS_DIR,
    _sync_folder,
    check_signature,
    find_checkpoint,
    read_checkpoint,
    restore_optimizer,
    run_signature,
    write_checkpoint,
)
from .masking import batch_rows, check_whole_word, make_collator, masked_batch, tokenize
from .model import (
    heldout_perplexity,
    learning_rate,
    load_masked_lm,
    make_optimizer,
    masked_loss_sum,
    masked_positions_head,
    set_head_only,
    torch_device,
)
from .settings import HEAD_WAS_NEW, PretrainProgress, PretrainResult, PretrainSettings
from .texts import split_heldout

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

ENCODER_DIR = "encoder"
SUMMARY_FILE = "pretraining.json"  # inside the encoder directory: how it was made


def check_pretrain_output(out: Path, *, inputs: Sequence[Path], overwrite: bool) -> None:
    """Raise BertclsError before any work if OUT cannot take the result (checked by the CLI
    first, and again by `pretrain_encoder`)."""
    out = Path(out)
    check_output_folder(out, option="--out")
    encoder_dir = out / ENCODER_DIR
    if encoder_dir.exists() and not overwrite:
        raise BertclsError(
            f"{encoder_dir} exists already (a finished pre-training). Pass --overwrite to "
            "replace it when this run ends, or choose another --out."
        )
    written = [encoder_dir.resolve(), (out / CHECKPOINTS_DIR).resolve()]
    for path in inputs:
        target = Path(path).resolve()
        if target == out.resolve() or any(w == target or w in target.parents for w in written):
            raise BertclsError(
                f"--out {out}: pre-training writes {ENCODER_DIR}/ and {CHECKPOINTS_DIR}/ there, "
                f"which would overwrite the input {path}. Choose another --out."
            )


def pretrain_encoder(
    texts: Sequence[str],
    out: str | Path,
    settings: PretrainSettings | None = None,
    *,
    resume: str = "auto",
    overwrite: bool = False,
    progress: Callable[[PretrainProgress], None] | None = None,
    log: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> PretrainResult:
    """Continue masked-language-model training of an encoder on ``texts``; write OUT/encoder.

    texts: distinct texts (`read_pretrain_texts`); a held-out slice of them is never trained on.
    out: the run's folder: checkpoints/ while it runs, encoder/ at the end.
    settings: see `PretrainSettings`.
    resume: "auto" (continue from the latest checkpoint in ``out``, if any), "no" (start over;
        the checkpoints in ``out`` are deleted) or a checkpoint folder.
    overwrite: replace an existing OUT/encoder at the end (otherwise refused before any work).
    progress: called after every step.
    log: called with a sentence at each stage (loading, resuming, evaluating, checkpoints).
    should_stop: polled before every step; when it returns True a checkpoint is written and
        the result comes back with ``stopped`` set and no encoder written. The CLI sets it on
        Ctrl+C.
    """
    import torch

    settings = settings or PretrainSettings()
    settings.check()
    say = log or (lambda message: None)
    out = Path(out)
    check_pretrain_output(out, inputs=[], overwrite=overwrite)
    device = torch_device(settings.gpu_id)
    source = resolve_encoder(settings.encoder)
    local = Path(source).exists()
    if local:
        check_pretrain_output(out, inputs=[Path(source)], overwrite=overwrite)
    # load_pretrained runs every check the classifier's encoder gets (no code, safetensors,
    # a BERT-family model, a fast tokenizer); the model itself is loaded again with its head.
    _, tokenizer = load_pretrained(source, shown_name=settings.encoder)
    if tokenizer.mask_token is None:
        raise BertclsError(f"The tokenizer of {settings.encoder} has no mask token.")
    if settings.whole_word:
        check_whole_word(tokenizer, settings.encoder)
    if settings.max_length > tokenizer.model_max_length:
        raise BertclsError(
            f"max_length {settings.max_length} is more than {settings.encoder} takes "
            f"({tokenizer.model_max_length} word pieces); pass --max-length "
            f"{tokenizer.model_max_length} or less."
        )
    train_texts, heldout_texts = split_heldout(texts, settings.heldout, settings.seed)
    signature = run_signature(source, settings, train_texts, heldout_texts)

    make_output_folder(out, option="--out")
    _remove_stale_temporaries(out)
    checkpoint = find_checkpoint(out, resume)
    saved: dict[str, Any] = {}
    torch.manual_seed(settings.seed)  # before loading: a new head's random start is seeded too
    if checkpoint is not None:
        saved, tensors = read_checkpoint(checkpoint)
        check_signature(checkpoint, saved.get("signature", {}), signature)
        model, _ = load_masked_lm(str(checkpoint), local=True)
        say(f"Continuing from {checkpoint} (step {saved['step']:,}).")
    else:
        model, head_was_new = load_masked_lm(source, local=local)
        saved = {"head_was_new": head_was_new, "seconds": 0.0}
        if head_was_new:
            say(HEAD_WAS_NEW)
    model.to(device)
    model.train()

    pieces = tokenize(tokenizer, train_texts, settings.max_length)
    heldout_pieces = tokenize(tokenizer, heldout_texts, settings.max_length)
    heldout_batches = []
    if len(heldout_pieces):
        masker = make_collator(tokenizer, settings, settings.seed + 1_000)
        heldout_batches = [
            masked_batch(
                masker,
                tokenizer,
                heldout_pieces,
                range(start, min(start + settings.batch_size, len(heldout_pieces))),
                whole_word=settings.whole_word,
            )
            for start in range(0, len(heldout_pieces), settings.batch_size)
        ]
    collator = make_collator(tokenizer, settings, settings.seed)
    probe = (
        heldout_batches[0]
        if heldout_batches
        else masked_batch(
            make_collator(tokenizer, settings, settings.seed + 2_000),
            tokenizer,
            pieces,
            range(min(settings.batch_size, len(pieces))),
            whole_word=settings.whole_word,
        )
    )
    head = masked_positions_head(model, {k: v.to(device) for k, v in probe.items()})
    optimizer = make_optimizer(model, settings)

    step = 0
    if checkpoint is not None:
        step = int(saved["step"])
        restore_optimizer(optimizer, saved, tensors)
        torch.set_rng_state(tensors["rng.torch"])
        collator.generator.set_state(tensors["rng.masking"])
        if "rng.cuda" in tensors and device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    elif heldout_batches:
        say(f"Measuring the held-out loss ({len(heldout_texts):,} texts) before training.")
        saved["perplexity_before"] = heldout_perplexity(model, head, heldout_batches, device)

    def state() -> dict[str, Any]:
        keep = ("head_was_new", "perplexity_before", "perplexity_after_head_warmup")
        return {
            "signature": signature,
            "settings": asdict(settings),
            **{key: saved.get(key) for key in keep},
            "seconds": saved.get("seconds", 0.0) + (time.monotonic() - started),
        }

    started = time.monotonic()
    resumed_from = step if checkpoint is not None else None
    last_saved = step if checkpoint is not None else -1
    stopped = False
    head_only = None
    while step < settings.max_steps:
        if should_stop is not None and should_stop():
            stopped = True
            break
        if head_only != (step < settings.head_warmup_steps):
            head_only = step < settings.head_warmup_steps
            set_head_only(model, head_only)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, settings)
        rows = batch_rows(step, len(pieces), settings.batch_size, settings.seed)
        batch = masked_batch(collator, tokenizer, pieces, rows, whole_word=settings.whole_word)
        loss_sum, count = masked_loss_sum(model, head, {k: v.to(device) for k, v in batch.items()})
        loss = None
        if count:  # a batch of very short texts can have nothing masked
            mean = loss_sum / count
            mean.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            loss = float(mean.detach())
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step == settings.head_warmup_steps and heldout_batches:
            say(f"Measuring the held-out loss after the {step:,} head warm-up steps.")
            saved["perplexity_after_head_warmup"] = heldout_perplexity(
                model, head, heldout_batches, device
            )
        if progress is not None:
            progress(
                PretrainProgress(
                    step=step,
                    max_steps=settings.max_steps,
                    head_only=bool(head_only),
                    loss=loss,
                    seconds=time.monotonic() - started,
                    steps_done_here=step - (resumed_from or 0),
                )
            )
        if step % settings.checkpoint_every == 0 and step < settings.max_steps:
            path = write_checkpoint(out, step, model, optimizer, collator.generator, state())
            last_saved = step
            say(f"Checkpoint {path}")

    def result(**changes: Any) -> PretrainResult:
        return PretrainResult(
            **{
                "encoder_dir": None,
                "checkpoint": None,
                "source": settings.encoder,
                "steps": step,
                "max_steps": settings.max_steps,
                "resumed_from": resumed_from,
                "stopped": False,
                "train_texts": len(train_texts),
                "train_sequences": len(pieces),
                "heldout_texts": len(heldout_texts),
                "perplexity_before": saved.get("perplexity_before"),
                "perplexity_after_head_warmup": saved.get("perplexity_after_head_warmup"),
                "perplexity_after": None,
                "head_was_new": bool(saved.get("head_was_new")),
                "seconds": state()["seconds"],
                "device": str(device),
                "settings": settings,
                **changes,
            }
        )

    if stopped:
        if last_saved == step:
            path = (
                checkpoint if resumed_from == step else out / CHECKPOINTS_DIR / f"step-{step:06d}"
            )
        else:
            path = write_checkpoint(out, step, model, optimizer, collator.generator, state())
        return result(stopped=True, checkpoint=path)

    perplexity_after = None
    if heldout_batches:
        say("Measuring the held-out loss after training.")
        perplexity_after = heldout_perplexity(model, head, heldout_batches, device)
    kept = None
    if settings.keep_checkpoints:
        kept = write_checkpoint(out, step, model, optimizer, collator.generator, state())
    finished = result(checkpoint=kept, perplexity_after=perplexity_after)
    finished.encoder_dir = write_encoder(out, model, tokenizer, finished, overwrite=overwrite)
    if not settings.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINTS_DIR, ignore_errors=True)
    return finished


@contextmanager
def stop_requests(notice: Callable[[str], None] | None = None) -> Iterator[Callable[[], bool]]:
    """A ``should_stop`` for `pretrain_encoder` that turns True on Ctrl+C (SIGINT).

    The first Ctrl+C lets the current step finish, after which a checkpoint is written and the
    run returns; a second one interrupts at once (the checkpoint being written, if any, is
    discarded whole and the previous one stays). Outside the main thread (where signals cannot
    be caught) it never turns True.
    """
    import signal
    import threading

    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return

    def handler(signum: int, frame: Any) -> None:
        if requested.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        requested.set()
        if notice is not None:
            notice(
                "Stopping after this step and writing a checkpoint (Ctrl+C again stops at "
                "once, keeping the previous checkpoint)."
            )

    previous = signal.getsignal(signal.SIGINT) or signal.default_int_handler
    signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def write_encoder(
    out: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    result: PretrainResult,
    *,
    overwrite: bool,
) -> Path:
    """Write OUT/encoder atomically: save into a hidden folder, check it as any encoder is
    checked (`check_model_dir`: safetensors, tokenizer, no code), then rename it into place."""
    final = out / ENCODER_DIR
    if final.exists() and not overwrite:
        raise BertclsError(f"{final} exists already. Pass --overwrite to replace it.")
    token = secrets.token_hex(4)
    tmp = out / f".{ENCODER_DIR}.tmp-{token}"
    old = out / f".{ENCODER_DIR}.old-{token}"
    summary = {
        key: value
        for key, value in asdict(result).items()
        if key not in ("encoder_dir", "checkpoint", "stopped", "settings")
    }
    summary["settings"] = asdict(result.settings)
    summary["written"] = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf8")
        check_model_dir(tmp)
        _sync_folder(tmp)
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
    except OSError as error:
        raise write_error(final, error) from error
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return final


def _remove_stale_temporaries(out: Path) -> None:
    """Hidden folders a killed run left half-written (never a complete checkpoint)."""
    for pattern, folder in ((".step-*.tmp-*", out / CHECKPOINTS_DIR), (f".{ENCODER_DIR}.*", out)):
        if folder.is_dir():
            for path in folder.glob(pattern):
                shutil.rmtree(path, ignore_errors=True)
