"""Encoders: characters → per-character feature vectors, exactly one position per character.

- ``CharBiLSTMEncoder``: the default: embedding(128) [+ bigrams] [+ soft lexicon] → Bi-LSTM(200 per direction);
  what its tables start from (LAC's vectors, the lexicon) is ``knowledge.py``'s business.
- ``TransformerCharEncoder``: a pretrained BERT-like model (local directory or hub id) → Bi-LSTM.
  Characters are mapped to vocabulary ids one by one (the tokenizer would merge Latin runs and drop
  spaces, breaking the one-position-per-character rule); texts longer than the model's window are
  encoded in overlapping windows and each character takes the window where it sits most centrally.

Both return a list of layer outputs; the last is the feature map the emissions and the LPN read.
The Bi-LSTM is two one-way LSTMs, the backward one reading each sequence reversed within its own
length: same outputs as ``pack_padded_sequence`` but about 3× faster backward on CPU.
Inside ``parallel_directions()`` (inference only, CPU only) the two directions run at once on two threads:
a single short record has no other parallelism to use, and each direction is a sequential chain of small
products.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..crf import reverse_within_length
from .bigrams import BigramEmbedding
from .softlexicon import SoftLexicon


_local = threading.local()
_pool_lock = threading.Lock()
_direction_pool: ThreadPoolExecutor | None = None


@contextmanager
def parallel_directions(enabled: bool = True) -> Iterator[None]:
    """Run the backward direction of every BiLSTM on a helper thread while this thread runs the forward
    one (this thread only; gradient-free calls only)."""
    prev = getattr(_local, "parallel", False)
    _local.parallel = enabled
    try:
        yield
    finally:
        _local.parallel = prev


def _pool() -> ThreadPoolExecutor:
    global _direction_pool
    with _pool_lock:
        if _direction_pool is None:
            _direction_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="bilstm-bwd")
        return _direction_pool


class BiLSTM(nn.Module):
    """Masked bidirectional LSTM without packing (see module doc)."""

    def __init__(self, input_dim: int, hidden: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.fwd = nn.LSTM(input_dim, hidden, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.bwd = nn.LSTM(input_dim, hidden, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.out_dim = 2 * hidden

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        lengths = mask.long().sum(1)
        # on a GPU the helper thread only adds latency (measured: docs/results.md, "On a GPU"): both directions run here
        if getattr(_local, "parallel", False) and not torch.is_grad_enabled() and not x.is_cuda:
            job = _pool().submit(self._backward_no_grad, x, lengths)
            f, _ = self.fwd(x)
            b = job.result()
        else:
            f, _ = self.fwd(x)
            b = self._backward(x, lengths)
        return torch.cat([f, b], dim=2) * mask.unsqueeze(2).to(x.dtype)

    def _backward(self, x: Tensor, lengths: Tensor) -> Tensor:
        b, _ = self.bwd(reverse_within_length(x, lengths))
        return reverse_within_length(b, lengths)

    def _backward_no_grad(self, x: Tensor, lengths: Tensor) -> Tensor:
        with torch.no_grad():  # grad mode is per thread: the helper thread must switch it off itself
            return self._backward(x, lengths)


class CharBiLSTMEncoder(nn.Module):
    """Character embedding [+ bigram embedding] [+ soft-lexicon vectors] → Bi-LSTM.

    The optional parts (``bigrams``, ``lexicon``) and where the character rows came from
    (``char_vectors``, ``knowledge``: what the builder records) are part of the checkpoint's spec."""

    kind = "char"

    def __init__(self, vocab_size: int, emb_dim: int = 128, hidden: int = 200, dropout: float = 0.2,
                 bigrams: BigramEmbedding | None = None, lexicon: SoftLexicon | None = None, knowledge: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=0)
        self.bigrams = bigrams
        self.lexicon = lexicon
        self.knowledge: dict[str, Any] = dict(knowledge or {})
        self.dropout = nn.Dropout(dropout)
        in_dim = emb_dim + (bigrams.dim if bigrams is not None else 0) + (lexicon.out_dim if lexicon is not None else 0)
        self.lstm = BiLSTM(in_dim, hidden)
        self.out_dim = self.lstm.out_dim
        self.layer_dims = [in_dim, self.out_dim]
        self._shape = {"emb_dim": emb_dim, "hidden": hidden, "dropout": dropout}

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": "char", **self._shape}
        if self.bigrams is not None:
            spec["bigrams"] = {"pairs": self.bigrams.count, "dim": self.bigrams.dim}
        if self.lexicon is not None:
            spec["lexicon"] = {"words": self.lexicon.num_words, "max_chars": self.lexicon.max_chars, "dim": self.lexicon.dim,
                               "proj": self.lexicon.project.out_features if self.lexicon.project is not None else None}
        if self.knowledge:
            spec["knowledge"] = self.knowledge
        return spec

    @classmethod
    def from_spec(cls, vocab_size: int, spec: dict[str, Any]) -> "CharBiLSTMEncoder":
        """An untrained encoder of a checkpoint's shapes (its state dict fills every table)."""
        bi, lex = spec.get("bigrams"), spec.get("lexicon")
        return cls(vocab_size, spec["emb_dim"], spec["hidden"], spec["dropout"],
                   bigrams=BigramEmbedding.empty(bi["pairs"], bi["dim"]) if bi else None,
                   lexicon=SoftLexicon.empty(lex["words"], lex["max_chars"], lex["dim"], lex.get("proj")) if lex else None,
                   knowledge=spec.get("knowledge"))

    def forward(self, ids: Tensor, mask: Tensor) -> list[Tensor]:
        parts = [self.embedding(ids)]
        if self.bigrams is not None:
            parts.append(self.bigrams(ids))
        if self.lexicon is not None:
            parts.append(self.lexicon(ids))
        emb = self.dropout(torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0])
        return [emb, self.dropout(self.lstm(emb, mask))]

    def grow_vocab(self, new_size: int, rows: Tensor | None = None) -> None:
        """Add rows for characters first seen after training began (fine-tuning on new tasks): ``rows``
        when given (LAC's vectors), else random at the scale of the trained rows."""
        old = self.embedding
        if new_size <= old.num_embeddings:
            return
        emb = nn.Embedding(new_size, old.embedding_dim, padding_idx=0, device=old.weight.device)
        with torch.no_grad():
            emb.weight.normal_(0.0, float(old.weight[2:].std()) if old.num_embeddings > 3 else 1.0)
            emb.weight[: old.num_embeddings] = old.weight
            if rows is not None:
                emb.weight[old.num_embeddings :] = rows.to(emb.weight.device, emb.weight.dtype)
        self.embedding = emb


class TransformerVocab:
    """Maps each character to the pretrained vocabulary on its own (see module doc)."""

    def __init__(self, tokenizer: Any) -> None:
        self.vocab: dict[str, int] = dict(tokenizer.get_vocab())
        self.unk_id = int(tokenizer.unk_token_id)
        self.cls_id = int(tokenizer.cls_token_id)
        self.sep_id = int(tokenizer.sep_token_id)
        self.pad_id = int(tokenizer.pad_token_id or 0)
        self.lower = bool(getattr(tokenizer, "do_lower_case", False)) or bool(
            getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None) is not None
            and "lowercase" in str(tokenizer.backend_tokenizer.normalizer).lower()
        )
        self.space_id = self.vocab.get("[unused1]", self.unk_id)

    def encode(self, text: str) -> list[int]:
        out = []
        for c in text:
            if c.isspace():
                out.append(self.space_id)
                continue
            out.append(self.vocab.get(c, self.vocab.get(c.lower(), self.unk_id) if self.lower else self.unk_id))
        return out


class TransformerCharEncoder(nn.Module):
    kind = "transformer"

    def __init__(self, model: nn.Module, vocab: TransformerVocab, hidden: int = 200, dropout: float = 0.2, window: int = 510, source: str = "") -> None:
        super().__init__()
        self.model = model
        self.tvocab = vocab
        self.window = min(window, int(getattr(model.config, "max_position_embeddings", 512)) - 2)
        self.dropout = nn.Dropout(dropout)
        self.lstm = BiLSTM(int(model.config.hidden_size), hidden)
        self.out_dim = self.lstm.out_dim
        self.layer_dims = [int(model.config.hidden_size), self.out_dim]
        self.spec = {"kind": "transformer", "source": source, "hidden": hidden, "dropout": dropout, "window": self.window}

    def _run(self, ids: Tensor, mask: Tensor) -> Tensor:
        B = ids.shape[0]
        cls = ids.new_full((B, 1), self.tvocab.cls_id)
        sep = ids.new_full((B, 1), self.tvocab.pad_id)
        lengths = mask.long().sum(1)
        inp = torch.cat([cls, torch.where(mask, ids, torch.full_like(ids, self.tvocab.pad_id)), sep], dim=1)
        inp[torch.arange(B, device=ids.device), lengths + 1] = self.tvocab.sep_id
        att = torch.cat([mask.new_ones(B, 1), mask, mask.new_ones(B, 1)], dim=1)
        hidden = self.model(input_ids=inp, attention_mask=att.long()).last_hidden_state
        return hidden[:, 1:-1]

    def forward(self, ids: Tensor, mask: Tensor) -> list[Tensor]:
        T, W = ids.shape[1], self.window
        if T <= W:
            h = self._run(ids, mask)
        else:  # overlapping windows, half-window stride; keep each character's most central window
            stride = W // 2
            starts = list(range(0, T - W, stride)) + [T - W]
            h = ids.new_zeros(ids.shape[0], T, self.layer_dims[0], dtype=torch.float32)
            best = torch.full((T,), -1.0, device=ids.device)
            for s in starts:
                win_mask = mask[:, s : s + W].clone()
                win_mask[:, 0] = True
                hw = self._run(ids[:, s : s + W], win_mask)
                pos = torch.arange(s, s + W, device=ids.device)
                centrality = torch.minimum(pos - s, s + W - 1 - pos).float()
                take = centrality > best[s : s + W]
                h[:, s : s + W][:, take] = hw[:, take]
                best[s : s + W] = torch.maximum(best[s : s + W], centrality)
        h = self.dropout(h) * mask.unsqueeze(2).to(h.dtype)
        return [h, self.dropout(self.lstm(h, mask))]


def load_transformer(source: str, hidden: int = 200, dropout: float = 0.2, from_saved: Path | None = None) -> tuple[TransformerCharEncoder, Any]:
    """Build the transformer encoder and return it with its tokenizer. ``source`` is a local directory or a hub id; nothing is downloaded
    unless ``source`` is a hub id the user named. ``from_saved`` rebuilds it from a checkpoint's copy of the
    config and tokenizer (weights come from the checkpoint), with no network at all."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if from_saved is not None:
        tok = AutoTokenizer.from_pretrained(str(from_saved), local_files_only=True)
        model = AutoModel.from_config(AutoConfig.from_pretrained(str(from_saved), local_files_only=True))
    else:
        local = os.path.isdir(source)
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local)
        model = AutoModel.from_pretrained(source, local_files_only=local)
    return TransformerCharEncoder(model, TransformerVocab(tok), hidden=hidden, dropout=dropout, source=source), tok
