"""The settings of a pre-training run, the progress it reports and its result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..encoder import DEFAULT_ENCODER
from ..errors import BertclsError


@dataclass
class PretrainSettings:
    """Every setting of a pre-training run (the CLI options of ``bertcls pretrain``)."""

    #: Encoder to start from: hub name or local directory; the default is the embedded
    #: MiniLM-L6 (offline), as for the ``encoder`` setting of ``bert_textcat``.
    encoder: str = DEFAULT_ENCODER
    #: Mask whole words (all word pieces of a chosen word) instead of single word pieces.
    #: Needs a WordPiece tokenizer with "##" continuations (BERT, MiniLM, ELECTRA).
    whole_word: bool = False
    #: Fraction of the word pieces chosen for prediction in each text (BERT: 0.15).
    mlm_probability: float = 0.15
    #: Optimizer steps in all, head warm-up included (one batch each).
    max_steps: int = 1000
    #: Texts (or pieces of long texts) per step.
    batch_size: int = 32
    #: Peak learning rate of AdamW for the whole model (warm-up, then linear decay to 0).
    learn_rate: float = 5e-5
    #: AdamW's decoupled weight decay (not applied to biases and LayerNorm weights).
    weight_decay: float = 0.01
    #: First steps that train the masked-language-model head alone, the encoder frozen: a head
    #: that the encoder did not ship with starts random, and this fits it before the encoder
    #: changes. The held-out loss is measured again after them.
    head_warmup_steps: int = 0
    #: Learning rate (constant) of the head warm-up steps.
    head_learn_rate: float = 1e-3
    #: Word pieces per sequence, special tokens included; longer texts are cut into pieces.
    max_length: int = 128
    #: Fraction of the distinct texts held out to measure the masked-language-model loss and
    #: perplexity before and after (at most MAX_HELDOUT_TEXTS texts; 0: none).
    heldout: float = 0.05
    #: Seed of the held-out split, the batch order, the masking and dropout.
    seed: int = 0
    #: -1 trains on the CPU, 0 on the first GPU (spaCy's gpu_id convention).
    gpu_id: int = -1
    #: Steps between checkpoints (an interrupt writes one too).
    checkpoint_every: int = 100
    #: Keep the last checkpoint after the encoder is written (to continue with more steps
    #: later); by default the checkpoints are deleted then.
    keep_checkpoints: bool = False

    def check(self) -> None:
        """Raise BertclsError for a value out of range."""
        limits = {
            "max_steps": self.max_steps >= 1,
            "batch_size": self.batch_size >= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
            "max_length": self.max_length >= 4,
            "head_warmup_steps": 0 <= self.head_warmup_steps < self.max_steps,
            "mlm_probability": 0 < self.mlm_probability < 1,
            "learn_rate": self.learn_rate > 0,
            "head_learn_rate": self.head_learn_rate > 0,
            "weight_decay": self.weight_decay >= 0,
        }
        for name, ok in limits.items():
            if not ok:
                hint = " (and below max_steps)" if name == "head_warmup_steps" else ""
                raise BertclsError(f"{name} = {getattr(self, name)!r} is out of range{hint}.")


@dataclass
class PretrainProgress:
    """What a pre-training run reports after each step."""

    step: int
    max_steps: int
    head_only: bool  # a head warm-up step (the encoder frozen)
    loss: float | None  # this step's masked-language-model loss (None: nothing was masked)
    seconds: float  # since this run (not the resumed one) started
    steps_done_here: int  # steps this run made (for a rate)

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(1, self.steps_done_here)

    def format(self) -> str:
        """One line: step, phase, loss, speed and time left."""
        phase = " (head only)" if self.head_only else ""
        loss = "-" if self.loss is None else f"{self.loss:.3f}"
        left = format_seconds(self.seconds_per_step * (self.max_steps - self.step))
        return (
            f"step {self.step:,}/{self.max_steps:,}{phase}: loss {loss}, "
            f"{self.seconds_per_step:.2f} s/step, about {left} left"
        )


@dataclass
class PretrainResult:
    """What `pretrain_encoder` did."""

    encoder_dir: Path | None  # None when stopped before the end
    checkpoint: Path | None  # the checkpoint left behind (stopped, or keep_checkpoints)
    source: str  # the encoder started from, as given (hub name or directory)
    steps: int
    max_steps: int
    resumed_from: int | None  # step of the checkpoint this run continued, if any
    stopped: bool
    train_texts: int
    train_sequences: int  # word-piece sequences (long texts give several)
    heldout_texts: int
    perplexity_before: float | None
    perplexity_after_head_warmup: float | None
    perplexity_after: float | None
    head_was_new: bool  # the encoder had no masked-language-model head; it started random
    seconds: float  # all runs of this pre-training together
    device: str
    settings: PretrainSettings

    def format(self) -> str:
        """A readable summary (printed by the CLI at the end)."""
        masking = "whole-word masking" if self.settings.whole_word else "word-piece masking"
        lines = []
        if self.stopped:
            lines.append(
                f"Stopped at step {self.steps:,} of {self.max_steps:,}; checkpoint "
                f"{self.checkpoint}. Run the same command again to continue from it."
            )
            return "\n".join(lines)
        resumed = f", continued from step {self.resumed_from:,}" if self.resumed_from else ""
        lines.append(
            f"Pre-trained {self.source} for {self.steps:,} steps on {self.train_texts:,} texts "
            f"({self.train_sequences:,} sequences, batches of {self.settings.batch_size}, "
            f"{masking}{resumed}) in {format_seconds(self.seconds)} on {self.device}."
        )
        if self.head_was_new:
            lines.append(HEAD_WAS_NEW_SHORT)
        if self.heldout_texts:
            shown = [f"before {format_perplexity(self.perplexity_before)}"]
            if self.perplexity_after_head_warmup is not None:
                shown.append(
                    f"after the {self.settings.head_warmup_steps:,} head warm-up steps "
                    f"{format_perplexity(self.perplexity_after_head_warmup)}"
                )
            shown.append(f"after {format_perplexity(self.perplexity_after)}")
            lines.append(
                f"Held-out perplexity ({self.heldout_texts:,} texts never trained on): "
                + ", ".join(shown)
            )
        if self.checkpoint is not None:
            lines.append(f"kept the checkpoint {self.checkpoint}")
        lines.append(
            f"wrote {self.encoder_dir}: use it as the encoder (bertcls train --encoder "
            f"{self.encoder_dir}, or spacy project run ... --vars.encoder {self.encoder_dir})"
        )
        return "\n".join(lines)


HEAD_WAS_NEW = (
    "The encoder came without a masked-language-model head (as sentence-transformers models, "
    "the default MiniLM-L6 among them, do), so a new head was initialized randomly: the "
    "perplexity before training measures that random head, not the encoder. "
    "--head-warmup-steps N fits the head alone first and measures again, which is the fair "
    "'before'. The encoder written keeps the trained head, so a later pre-training starts "
    "from it."
)
HEAD_WAS_NEW_SHORT = (
    "The masked-language-model head started random (the encoder shipped none): 'before' "
    "measures that random head."
)


def format_perplexity(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
