"""Why this label: how much each word of a text pushed a ``bert_textcat`` prediction.

``explain(nlp, text)`` gives one score per spaCy token for the pipeline's calibrated probability
p of a label (by default the predicted one, as ``spacy_bertcls.decisions`` decides it). A score
is in log-odds of that probability, log(p / (1 - p)), calibrated as ``predict`` calibrates it
(temperature; multi-label: a bias per label): positive pushed towards the label, negative away
from it. Log-odds rather than p itself, because a confident prediction saturates: at
p = 0.99999 hiding any one word leaves p at 0.99999, and every word would score 0. Two
methods, both from captum:

* ``"occlusion"`` (captum ``FeatureAblation``, one feature per spaCy token): the log-odds with
  the text as it is minus those with the token's word pieces hidden from the encoder
  (attention mask 0, so they are neither attended to nor pooled), in every window they are in
  at once. One encoder pass per token, no gradients, batched.
* ``"ig"``: integrated gradients on the input embeddings (captum ``LayerIntegratedGradients``
  on the encoder's word-embedding layer), from a baseline of [PAD] pieces with the same
  special tokens and attention mask; ``n_steps`` forward and backward passes. A token's score
  is the sum over its pieces, and over every window a piece is in, of the attribution summed
  over the embedding's dimensions, so the scores add up to log-odds(text) minus
  log-odds(baseline) (captum's completeness axiom). Summed, not averaged, over windows: a
  piece in two overlapping windows does act on the prediction through both, and occlusion,
  hiding it in both, measures that sum too.

The default is occlusion, by measurement (``benchmarks/explain_faithfulness.py``: 100 SMS and
100 airline tweets from the test splits, the frozen MiniLM pipelines, CPU). Deleting the top
k = 1..5 words lowered the predicted label's probability by 0.135 on average for occlusion
against 0.120 for integrated gradients on SMS, 0.397 against 0.321 on tweets (random words:
0.017 and 0.055); occlusion's drop was at least as large at every k on both data sets. An
occlusion explanation also took about half the time (2.8 s against 6.0 s median on SMS,
4.1 s against 8.1 s on tweets, on 2 CPU cores shared with other jobs: a fraction of that on an
idle machine). Deleting words is close to what occlusion does, so the benchmark favours it;
integrated gradients answer another question (the path from an all-[PAD] text the model never
saw, which for some pipelines is itself strongly one label). Occlusion also works for
pipelines whose encoder runs in ONNX Runtime (``bertcls optimize``); integrated gradients need
the PyTorch encoder.

Attention weights are not offered: they say where the model looked, not what changed its
output, and often disagree with gradient and removal-based importance (Jain & Wallace 2019,
"Attention is not Explanation").

Word pieces are mapped back to spaCy tokens through the fast tokenizer's offset mapping; a
long text is cut into the same windows the model predicts with (``spacy_bertcls.windows``).
The model runs in eval mode with its parameters' ``requires_grad`` off while explaining (both
put back after), so no gradient reaches a parameter and no dropout runs; nothing is cached.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from spacy.language import Language
from spacy.tokens import Doc

from .architectures import get_shim
from .decisions import DecisionRule, decision_rule
from .errors import BertclsError
from .pipelines import find_textcat
from .torch_modules import combine_windows
from .windows import pad_windows, window_starts

if TYPE_CHECKING:
    from .shim import BertClassifierShim
    from .textcat import BertTextCategorizer

METHODS = ("occlusion", "ig")
#: Chosen by measurement: see the module docstring.
DEFAULT_METHOD = "occlusion"
#: Integrated-gradients steps (Gauss-Legendre). On 6 SMS texts and the benchmark pipeline, 32
#: left the scores' sum within 0.06 of the log-odds gap it should equal (gaps of 3.7 to 47), 16
#: within 0.5; the time grows in proportion.
DEFAULT_STEPS = 32


@dataclass(frozen=True)
class TokenScore:
    """One spaCy token of an explained text and its score."""

    text: str
    #: Character offsets of the token in the text: ``text[start:end] == token text``.
    start: int
    end: int
    #: How much the token pushed the label's probability up (negative: down), in log-odds.
    score: float


@dataclass
class Explanation:
    """Scores of a text's spaCy tokens (in log-odds) for the pipeline's probability of ``label``.

    text: the text explained. label: the label explained. probability: the pipeline's
    calibrated probability of ``label`` for the text (``doc.cats[label]``). method:
    "occlusion" or "ig" (see the module docstring). tokens: every spaCy token of the text,
    in order (whitespace tokens and tokens the model never saw, e.g. past the first window
    with ``long_text = "truncate"``, score 0). seconds: how long explaining took.
    """

    text: str
    label: str
    probability: float
    method: str
    tokens: list[TokenScore]
    seconds: float = field(default=0.0, compare=False)

    def top(self, k: int = 5) -> list[TokenScore]:
        """The (at most) ``k`` tokens that pushed most towards the label, highest score
        first; tokens whose score is not positive are left out."""
        positive = [t for t in self.tokens if t.score > 0]
        return sorted(positive, key=lambda t: -t.score)[:k]

    def normalized(self) -> list[float]:
        """Each token's score divided by the largest absolute score (in [-1, 1]; all 0 when
        every score is 0): what a highlight's colour intensity shows."""
        largest = max((abs(t.score) for t in self.tokens), default=0.0)
        if largest == 0:
            return [0.0] * len(self.tokens)
        return [t.score / largest for t in self.tokens]

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for ``--json`` output."""
        return asdict(self)


def explain(
    nlp: Language,
    text_or_doc: str | Doc,
    label: str | None = None,
    *,
    method: str = DEFAULT_METHOD,
    n_steps: int = DEFAULT_STEPS,
) -> Explanation:
    """Word-level attributions of the pipeline's probability of ``label`` for a text.

    nlp: a pipeline with a ``bert_textcat`` component. text_or_doc: the text, or a Doc made
        by ``nlp`` (its tokens are the words scored). label: the label to explain; None: the
        predicted label (``spacy_bertcls.decisions.decision_rule``).
    method: "occlusion" (default) or "ig"; see the module docstring for what each computes
        and why occlusion is the default. n_steps: integrated-gradients steps (ignored by
        occlusion).
    """
    name, component = find_textcat(nlp)
    if not explainable(nlp):
        raise BertclsError(
            f"The text classifier {name!r} is made by {nlp.get_pipe_meta(name).factory!r}; "
            "explanations need a bert_textcat component (a BERT-family encoder)."
        )
    doc = nlp.make_doc(text_or_doc) if isinstance(text_or_doc, str) else text_or_doc
    return explain_doc(
        component, doc, label, rule=decision_rule(nlp), method=method, n_steps=n_steps
    )


def explainable(nlp: Language) -> bool:
    """Whether ``explain`` can explain the pipeline's text classifier (a ``bert_textcat``)."""
    name, _ = find_textcat(nlp)
    return nlp.get_pipe_meta(name).factory == "bert_textcat"


def explain_doc(
    component: BertTextCategorizer,
    doc: Doc,
    label: str | None = None,
    *,
    rule: DecisionRule | None = None,
    method: str = DEFAULT_METHOD,
    n_steps: int = DEFAULT_STEPS,
) -> Explanation:
    """``explain`` for a ``bert_textcat`` component and a Doc; ``rule`` decides the default
    label (None: the component's own thresholds, as ``decision_rule`` reads them)."""
    if method not in METHODS:
        raise BertclsError(f"method = {method!r} is not one of {', '.join(map(repr, METHODS))}.")
    if n_steps < 1:
        raise BertclsError(f"n_steps = {n_steps} must be at least 1.")
    if not doc.text.strip():
        raise BertclsError("The text is empty: there is nothing to explain.")
    labels = list(component.labels)
    if label is not None and label not in labels:
        raise BertclsError(
            f"label = {label!r} is not one of the pipeline's labels "
            f"({', '.join(map(repr, labels))})."
        )
    started = time.perf_counter()
    shim = get_shim(component.model)
    inputs = window_inputs(shim, doc)
    scorer = LabelLogOdds(component, shim, index=0)
    with explaining(shim):
        with torch.no_grad():
            logits = scorer.logits(inputs.input_ids[None], inputs.attention_mask[None])
            probs = scorer.probabilities(logits)[0].cpu().numpy()
        if label is None:
            rule = rule or component_rule(component)
            label = labels[int(rule.predicted_index(probs[None])[0])]
        scorer.index = labels.index(label)
        if method == "occlusion":
            scores = occlusion_scores(scorer, inputs, len(doc))
        else:
            scores = ig_scores(scorer, inputs, len(doc), n_steps)
    tokens = [
        TokenScore(token.text, token.idx, token.idx + len(token), float(score))
        for token, score in zip(doc, scores)
    ]
    return Explanation(
        text=doc.text,
        label=label,
        probability=float(probs[scorer.index]),
        method=method,
        tokens=tokens,
        seconds=time.perf_counter() - started,
    )


def component_rule(component: BertTextCategorizer) -> DecisionRule:
    """The decision rule of a ``bert_textcat`` component, as ``decision_rule`` reads it."""
    return DecisionRule.make(
        component.labels,
        exclusive=component.cfg["exclusive_classes"],
        thresholds=component.cfg["decision_thresholds"],
        default_threshold=component.cfg["threshold"],
    )


# The model's inputs, with each word piece's spaCy token ------------------------------------


@dataclass
class WindowInputs:
    """A text's padded word-piece windows (windows x pieces), as the model predicts them."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    #: The spaCy token of each position; -1 for special tokens and padding.
    token_index: torch.Tensor
    #: Where the text's own pieces are (not special tokens, not padding).
    is_piece: torch.Tensor


def window_inputs(shim: BertClassifierShim, doc: Doc) -> WindowInputs:
    """The windows ``spacy_bertcls.windows.make_windows`` cuts ``doc.text`` into, with the
    spaCy token of every word piece (through the tokenizer's offset mapping)."""
    tokenizer, cfg = shim.tokenizer, shim.cfg
    if not getattr(tokenizer, "is_fast", False):
        raise BertclsError(
            f"Explanations map word pieces to words with a fast tokenizer's offsets; this "
            f"pipeline's tokenizer ({type(tokenizer).__name__}) is not a fast one."
        )
    # Tokenized exactly as make_windows does, plus the offsets.
    encoded = tokenizer(
        doc.text,
        add_special_tokens=False,
        truncation=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        return_offsets_mapping=True,
        verbose=False,
    )
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    piece_tokens = pieces_to_tokens(doc, offsets)
    size = cfg["max_length"] - tokenizer.num_special_tokens_to_add(pair=False)
    windows: list[list[int]] = []
    token_rows: list[list[int]] = []
    # Where each window's own pieces are: (first position, count).
    spans: list[tuple[int, int]] = []
    for start in window_starts(len(ids), size, cfg["stride"], cfg["long_text"]):
        chunk = ids[start : start + size]
        window = tokenizer.build_inputs_with_special_tokens(chunk)
        first = special_prefix_length(window, chunk)
        row = [-1] * len(window)
        row[first : first + len(chunk)] = piece_tokens[start : start + len(chunk)]
        windows.append(window)
        token_rows.append(row)
        spans.append((first, len(chunk)))
    device = shim.device
    input_ids, mask = pad_windows(windows, tokenizer.pad_token_id, device)
    token_index = torch.full(input_ids.shape, -1, dtype=torch.long)
    is_piece = torch.zeros(input_ids.shape, dtype=torch.bool)
    for i, (row, (first, n)) in enumerate(zip(token_rows, spans)):
        token_index[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        is_piece[i, first : first + n] = True
    return WindowInputs(input_ids, mask, token_index.to(device), is_piece.to(device))


def special_prefix_length(window: Sequence[int], chunk: Sequence[int]) -> int:
    """Where ``chunk`` starts in ``window`` (its special tokens added): 1 for BERT's [CLS]."""
    n = len(chunk)
    for first in range(len(window) - n + 1):
        if list(window[first : first + n]) == list(chunk):
            return first
    raise BertclsError(
        "The tokenizer's build_inputs_with_special_tokens does not keep the word pieces in one "
        "run; explanations cannot place them."
    )


def pieces_to_tokens(doc: Doc, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """The spaCy token of each word piece: the one its characters overlap most (the first of
    equals); -1 for a piece with no characters or none in a token."""
    starts = [token.idx for token in doc]
    ends = [token.idx + len(token) for token in doc]
    result = []
    for start, end in offsets:
        best, best_overlap = -1, 0
        if end > start:
            first = max(bisect_right(starts, start) - 1, 0)
            for i in range(first, bisect_left(starts, end)):
                overlap = min(end, ends[i]) - max(start, starts[i])
                if overlap > best_overlap:
                    best, best_overlap = i, overlap
        result.append(best)
    return result


# The function explained: windows in, the calibrated probability of one label out -----------


class LabelLogOdds:
    """The calibrated log-odds of label ``index``, log(p / (1 - p)), for batches of one text's
    windows (batch x windows x pieces), with p computed as ``predict`` computes it: encoder,
    pooled windows combined per text, head, temperature, softmax or sigmoid."""

    def __init__(self, component: BertTextCategorizer, shim: BertClassifierShim, index: int):
        self.module = shim.module
        self.index = index
        self.exclusive = bool(component.cfg["exclusive_classes"])
        # The calibration BertTextCategorizer._scaled applies: the temperature, then (for
        # multi-label classifiers) a bias per label.
        temperature, bias = component.cfg["temperature"], component.cfg.get("logit_bias")
        self.temperature = self.bias = None
        if temperature:
            self.temperature = torch.tensor(temperature, dtype=torch.float32, device=shim.device)
        if bias:
            self.bias = torch.tensor(bias, dtype=torch.float32, device=shim.device)
        self.pad_token_id = shim.tokenizer.pad_token_id
        # Windows per encoder pass, as the pipeline predicts.
        self.batch_size = int(shim.cfg["encoder_batch_size"])

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The calibrated logits (batch x labels): divided by the temperature, plus the bias."""
        module = self.module
        batch, n_windows, width = input_ids.shape
        vectors = module.encode(
            input_ids.reshape(batch * n_windows, width),
            attention_mask.reshape(batch * n_windows, width),
        )
        text_index = torch.arange(batch, device=vectors.device).repeat_interleave(n_windows)
        features = combine_windows(vectors.float(), text_index, batch, module.window_pooling)
        logits = module(features=features)
        if self.temperature is not None:
            logits = logits / self.temperature
        return logits if self.bias is None else logits + self.bias

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(-1) if self.exclusive else logits.sigmoid()

    def log_odds(self, logits: torch.Tensor) -> torch.Tensor:
        """log(p / (1 - p)) of label ``index``, without rounding p to 0 or 1."""
        if not self.exclusive:
            return logits[:, self.index]
        # log p - log(1 - p) = z_label - logsumexp(z_others) for a softmax.
        others = logits.clone()
        others[:, self.index] = float("-inf")
        return logits[:, self.index] - others.logsumexp(-1)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.log_odds(self.logits(input_ids, attention_mask))


@contextmanager
def explaining(shim: BertClassifierShim) -> Iterator[None]:
    """Eval mode, no parameter gradients and no autocast while explaining; all put back."""
    module = shim.module
    was_training = module.training
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with torch.autocast(shim.device.type, enabled=False):
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        module.train(was_training)


def token_sums(values: torch.Tensor, inputs: WindowInputs, n_tokens: int) -> np.ndarray:
    """Sum per spaCy token of per-position values (windows x pieces)."""
    keep = inputs.token_index >= 0
    sums = torch.zeros(n_tokens, dtype=torch.float64, device=values.device)
    sums.index_add_(0, inputs.token_index[keep], values[keep].double())
    return sums.cpu().numpy()


def occlusion_scores(scorer: LabelLogOdds, inputs: WindowInputs, n_tokens: int) -> np.ndarray:
    """Log-odds of the label with the text minus without the token, per spaCy token (0 for
    tokens without word pieces in any window: whitespace, text past a truncated window)."""
    from captum.attr import FeatureAblation

    n_windows = inputs.input_ids.shape[0]
    # One feature per token that has pieces; the last column stands for the special tokens
    # and the padding, which are always kept.
    seen = torch.unique(inputs.token_index[inputs.token_index >= 0])
    feature_of = torch.full((n_tokens + 1,), len(seen), dtype=torch.long, device=seen.device)
    feature_of[seen] = torch.arange(len(seen), device=seen.device)
    position_feature = feature_of[inputs.token_index]  # token_index -1: the last column

    def forward(keep: torch.Tensor) -> torch.Tensor:
        batch = keep.shape[0]
        keep_all = torch.cat([keep, keep.new_ones(batch, 1)], dim=1)
        mask = inputs.attention_mask[None] * (keep_all[:, position_feature] > 0.5).long()
        ids = inputs.input_ids[None].expand(batch, -1, -1)
        return scorer(ids, mask)

    scores = np.zeros(n_tokens)
    if len(seen):
        keep = torch.ones(1, len(seen), device=seen.device)
        # As many texts per pass as keep the encoder batch near the pipeline's own.
        per_pass = max(1, scorer.batch_size // n_windows)
        with torch.no_grad():
            ablated = FeatureAblation(forward).attribute(
                keep, baselines=0.0, perturbations_per_eval=min(per_pass, len(seen))
            )
        scores[seen.cpu().numpy()] = ablated[0].double().cpu().numpy()
    return scores


def ig_scores(
    scorer: LabelLogOdds, inputs: WindowInputs, n_tokens: int, n_steps: int
) -> np.ndarray:
    """Integrated gradients on the word embeddings, summed per spaCy token."""
    from captum.attr import LayerIntegratedGradients

    encoder = scorer.module.encoder
    if not hasattr(encoder, "get_input_embeddings"):
        raise BertclsError(
            "method = 'ig' needs the PyTorch encoder, and this pipeline runs its encoder in "
            "ONNX Runtime (bertcls optimize). Use method = 'occlusion', or explain the pipeline "
            "it was optimized from."
        )
    ids, mask = inputs.input_ids[None], inputs.attention_mask[None]
    # The baseline text: [PAD] for every piece, the special tokens and the mask as they are.
    baseline = torch.where(inputs.is_piece[None], scorer.pad_token_id, ids)
    n_windows = ids.shape[1]
    attribution = LayerIntegratedGradients(scorer, encoder.get_input_embeddings()).attribute(
        ids,
        baselines=baseline,
        additional_forward_args=(mask,),
        n_steps=n_steps,
        internal_batch_size=max(1, scorer.batch_size // n_windows) * n_windows,
    )
    per_position = attribution.detach().sum(-1).reshape(n_windows, -1)
    return token_sums(per_position, inputs, n_tokens)
