"""Domain-adaptive pre-training: more masked-language-model training of an encoder on the
texts of a task, before a classifier is trained on top of it (Gururangan et al. 2020, "Don't
Stop Pretraining").

The path of the data:

    files -> texts (`read_pretrain_texts`: tables, .txt, .spacy; the test split removed)
          -> held-out slice and training texts (`split_heldout`)
          -> word pieces (`tokenize`: a long text is cut into pieces of max_length)
          -> masked batches (Hugging Face's `DataCollatorForLanguageModeling`: 15 % of the word
             pieces are chosen, of those 80 % become [MASK], 10 % a random word piece, 10 % stay;
             or `DataCollatorForWholeWordMask`: all pieces of a chosen word together)
          -> AdamW steps (`pretrain_encoder`) -> OUT/checkpoints/step-N -> OUT/encoder

Only the masked-language-model task is trained. BERT's second pre-training task, next sentence
prediction, is left out on purpose: RoBERTa (Liu et al. 2019) found that dropping it matches or
improves downstream results, and rows of a table are not sentence pairs anyway.

The test split is never trained on: a ``test.spacy`` input is refused, the texts of every
``exclude`` file are removed by their text hash (`fingerprint.text_hashes`, so whitespace
differences do not let a text through), and a ``test.spacy`` beside a ``.spacy`` input is
excluded without being named.

OUT/encoder is a Hugging Face model directory (``model.safetensors``, ``config.json``, the
tokenizer files and ``pretraining.json``; no pickle, no code) that passes the checks of
`encoder.check_model_dir`, so the ``encoder`` setting and ``bertcls train --encoder`` accept it.
It appears atomically: written to a hidden temporary folder beside it, checked, then renamed.
Checkpoints (``OUT/checkpoints/step-NNNNNN``: model weights, optimizer moments and random
states as safetensors, the rest as JSON) are written the same way, so an interrupt never leaves
half of one; a run started again with the same settings continues from the latest.

The modules, by job: `texts` (files -> texts, the held-out split), `masking` (texts -> masked
batches), `model` (device, model, loss, optimizer), `checkpoints` (write, read, resume),
`settings` (settings, progress, result) and `run` (`pretrain_encoder`, OUT/encoder).
"""

from .checkpoints import (
    CHECKPOINTS_DIR,
    STATE_FILE,
    TENSORS_FILE,
    check_signature,
    checkpoints,
    find_checkpoint,
    read_checkpoint,
    restore_optimizer,
    run_signature,
    write_checkpoint,
)
from .masking import (
    TOKENIZE_BATCH,
    Pieces,
    batch_rows,
    check_whole_word,
    make_collator,
    masked_batch,
    tokenize,
)
from .model import (
    WARMUP_FRACTION,
    heldout_perplexity,
    learning_rate,
    load_masked_lm,
    make_optimizer,
    masked_loss_sum,
    masked_positions_head,
    set_head_only,
    torch_device,
)
from .run import (
    ENCODER_DIR,
    SUMMARY_FILE,
    check_pretrain_output,
    pretrain_encoder,
    stop_requests,
    write_encoder,
)
from .settings import (
    HEAD_WAS_NEW,
    HEAD_WAS_NEW_SHORT,
    PretrainProgress,
    PretrainResult,
    PretrainSettings,
    format_perplexity,
    format_seconds,
)
from .texts import (
    MAX_HELDOUT_TEXTS,
    TEST_SPLIT_FILE,
    PretrainTexts,
    read_pretrain_texts,
    split_heldout,
)

__all__ = [
    "CHECKPOINTS_DIR",
    "ENCODER_DIR",
    "HEAD_WAS_NEW",
    "HEAD_WAS_NEW_SHORT",
    "MAX_HELDOUT_TEXTS",
    "STATE_FILE",
    "SUMMARY_FILE",
    "TENSORS_FILE",
    "TEST_SPLIT_FILE",
    "TOKENIZE_BATCH",
    "WARMUP_FRACTION",
    "Pieces",
    "PretrainProgress",
    "PretrainResult",
    "PretrainSettings",
    "PretrainTexts",
    "batch_rows",
    "check_pretrain_output",
    "check_signature",
    "check_whole_word",
    "checkpoints",
    "find_checkpoint",
    "format_perplexity",
    "format_seconds",
    "heldout_perplexity",
    "learning_rate",
    "load_masked_lm",
    "make_collator",
    "make_optimizer",
    "masked_batch",
    "masked_loss_sum",
    "masked_positions_head",
    "pretrain_encoder",
    "read_checkpoint",
    "read_pretrain_texts",
    "restore_optimizer",
    "run_signature",
    "set_head_only",
    "split_heldout",
    "stop_requests",
    "tokenize",
    "torch_device",
    "write_checkpoint",
    "write_encoder",
]
