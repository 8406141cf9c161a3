"""The PyTorch network inside ``spacy_bertcls.BertClassifier.v1``.

encoder -> one pooled vector per window ([CLS] or mean) -> windows of a text combined (mean or
max) -> head (linear, or MLP as in the usual frozen-encoder recipe) -> one logit per label.
"""

from __future__ import annotations

import torch
from torch import nn

POOLINGS = ("cls", "mean")
WINDOW_POOLINGS = ("mean", "max")
HEADS = ("linear", "mlp")


def pool_windows(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """One vector per window from the encoder's last hidden states."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def combine_windows(
    vectors: torch.Tensor, text_index: torch.Tensor, n_texts: int, window_pooling: str
) -> torch.Tensor:
    """One vector per text from the vectors of its windows."""
    if window_pooling == "max":
        out = vectors.new_full((n_texts, vectors.shape[1]), float("-inf"))
        index = text_index.unsqueeze(1).expand_as(vectors)
        return out.scatter_reduce(0, index, vectors, reduce="amax", include_self=True)
    sums = vectors.new_zeros((n_texts, vectors.shape[1])).index_add(0, text_index, vectors)
    counts = torch.bincount(text_index, minlength=n_texts).clamp(min=1).to(vectors.dtype)
    return sums / counts.unsqueeze(1)


def make_head(head: str, n_in: int, n_out: int, hidden_width: int, dropout: float) -> nn.Module:
    """The classification head on top of the pooled text vectors."""
    if head == "linear":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, n_out))
    return nn.Sequential(
        nn.Linear(n_in, hidden_width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden_width, n_out),
    )


class BertClassifierModule(nn.Module):
    """Encoder plus head. ``forward`` takes either token windows or precomputed features."""

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        *,
        pooling: str,
        layers: list[int],
        window_pooling: str,
    ):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.pooling = pooling
        self.layers = list(layers)
        self.window_pooling = window_pooling

    @property
    def encoder_frozen(self) -> bool:
        """Whether the encoder is frozen: its weights take no gradient (the one record of it)."""
        return not next(self.encoder.parameters()).requires_grad

    def freeze(self, frozen: bool) -> None:
        self.encoder.requires_grad_(not frozen)
        self.train(self.training)

    def set_head_dropout(self, rate: float) -> None:
        for module in self.head.modules():
            if isinstance(module, nn.Dropout):
                module.p = rate

    def train(self, mode: bool = True) -> BertClassifierModule:
        # A frozen encoder always runs as at inference (no dropout), so its features are a
        # pure function of the text and can be cached across epochs. Only the head switches
        # (this runs on every training step: no need to walk the encoder's modules then).
        self.training = mode
        self.head.train(mode)
        if self.encoder_frozen:
            if self.encoder.training:
                self.encoder.eval()
        else:
            self.encoder.train(mode)
        return self

    @property
    def feature_width(self) -> int:
        return self.encoder.config.hidden_size * len(self.layers)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> torch.Tensor:
        """Pooled vector of each window: the chosen layers' pooled vectors, concatenated."""
        if self.layers == [-1]:
            output = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            return pool_windows(output.last_hidden_state, attention_mask, self.pooling)
        output = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
        return torch.cat(
            [
                pool_windows(output.hidden_states[i], attention_mask, self.pooling)
                for i in self.layers
            ],
            dim=-1,
        )

    def forward(
        self,
        features: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        text_index: torch.Tensor | None = None,
        n_texts: int = 0,
    ) -> torch.Tensor:
        if features is None:
            vectors = self.encode(input_ids, attention_mask)
            features = combine_windows(vectors, text_index, n_texts, self.window_pooling)
        # The head runs in float32 even under mixed precision: it is tiny, and fp16 logits
        # would make the softmax and loss computed outside torch lose precision.
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.head(features.float())
