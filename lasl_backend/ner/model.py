"""The text-level NER model: what the CLI, the simulator and the Label Studio backend hold.

``NerModel`` bundles the label scheme, the character → id mapping, the student tagger, the Mean-Teacher
tagger (optional), and a loss-prediction net (optional). This module builds, moves, saves and loads it;
``predict`` (whole records in, per-record entities and active-learning quantities out) is composed from
the steps in ``prediction``.
"""

from __future__ import annotations

import copy
import logging
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ..atomic import atomic_directory
from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from .device import resolve_device
from .encoders import CharBiLSTMEncoder, TransformerVocab, load_transformer
from .knowledge import KnowledgeConfig, build_char_encoder, grow_char_encoder, report_lexicon_drift
from .lossnet import DEFAULT_LPN_LAYERS, LossNet, build_lossnet
from .prediction import RecordScore, aggregate, plan_batches, run_batches, score_batch
from .spans import LabelScheme
from .tagger import Tagger
from .vocab import CharVocab

FORMAT_VERSION = 1

log = logging.getLogger(__name__)


def _saved_lpn_layers(config: dict[str, Any]) -> int:
    """The LPN size a checkpoint was saved with; those written before the setting existed hold 2."""
    value = config.get("lpn_layers")
    return DEFAULT_LPN_LAYERS if value is None else int(value)


class NerModel:
    def __init__(
        self,
        scheme: LabelScheme,
        vocab: CharVocab | TransformerVocab,
        student: Tagger,
        teacher: Tagger | None = None,
        lossnet: LossNet | None = None,
        serve: str = "student",
        max_len: int = 200,
        meta: dict[str, Any] | None = None,
        tokenizer: Any = None,
    ) -> None:
        self.scheme = scheme
        self.vocab = vocab
        self.student = student
        self.teacher = teacher
        self.lossnet = lossnet
        self.serve = serve
        self.max_len = max_len
        self.meta = dict(meta or {})
        self.tokenizer = tokenizer
        for m in self.modules():
            m.eval()

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        labels: Sequence[str],
        texts: Iterable[str] = (),
        encoder: str = "char",
        max_len: int = 200,
        lossnet_kind: str | None = None,
        seed: int = 0,
        emb_dim: int = 128,
        hidden: int = 200,
        dropout: float = 0.2,
        lpn_layers: int = DEFAULT_LPN_LAYERS,
        knowledge: KnowledgeConfig | None = None,
    ) -> "NerModel":
        """A fresh model. ``encoder`` is ``"char"`` (vocabulary from ``texts``, starting from the sources
        ``knowledge`` names, none by default) or a local directory / hub id of a pretrained BERT-like model
        (``knowledge`` does not apply)."""
        torch.manual_seed(seed)
        scheme = LabelScheme.from_labels(labels)
        tokenizer = None
        if encoder == "char":
            texts = list(texts)
            vocab: CharVocab | TransformerVocab = CharVocab.build(texts)
            enc: nn.Module = build_char_encoder(vocab, texts, knowledge or KnowledgeConfig(), emb_dim=emb_dim, hidden=hidden, dropout=dropout)  # type: ignore[arg-type]
        else:
            if knowledge is not None and not knowledge.is_plain:
                log.info("LAC vectors, lexicons and bigrams apply to the char encoder; %s starts from its own pretraining", encoder)
            enc, tokenizer = load_transformer(encoder, hidden=hidden, dropout=dropout)
            vocab = enc.tvocab
        student = Tagger(enc, scheme.num_tags)
        lossnet = build_lossnet(lossnet_kind, student.encoder, lpn_layers)
        return cls(scheme, vocab, student, None, lossnet, "student", max_len, tokenizer=tokenizer)

    def clone(self) -> "NerModel":
        """A deep copy to fine-tune, leaving this (serving) model untouched."""
        tok, self.tokenizer = self.tokenizer, None
        try:
            other = copy.deepcopy(self)
        finally:
            self.tokenizer = tok
        other.tokenizer = tok
        return other

    def extend_vocab(self, texts: Iterable[str], knowledge: KnowledgeConfig | None = None) -> int:
        """Give characters first seen in ``texts`` their own embedding rows, and lexicon words and bigrams
        first seen there theirs (char encoder only); returns the number of new characters."""
        if not isinstance(self.vocab, CharVocab):
            return 0
        texts = list(texts)
        new = sorted({c for t in texts for c in t} - set(self.vocab.stoi))
        if new:
            self.vocab = CharVocab(self.vocab.to_list() + new)
        teacher = self.teacher.encoder if self.teacher is not None else None
        grow_char_encoder(self.student.encoder, teacher, self.vocab, len(new), texts, knowledge)  # type: ignore[arg-type]
        return len(new)

    # ---- properties ----------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self.scheme.labels)

    @property
    def served(self) -> Tagger:
        return self.teacher if (self.serve == "teacher" and self.teacher is not None) else self.student

    @property
    def lossnet_kind(self) -> str | None:
        """``"lpn"``, ``"learning_loss"`` or None: the loss net's kind, as the checkpoint stores it."""
        return self.lossnet.kind if self.lossnet is not None else None

    @property
    def lpn_layers(self) -> int | None:
        """Bi-LSTM layers of the LPN (0 = shared-encoder structure); None without an LPN."""
        return self.lossnet.lpn_layers if self.lossnet is not None else None

    def modules(self) -> list[nn.Module]:
        return [m for m in (self.student, self.teacher, self.lossnet) if m is not None]

    @property
    def device(self) -> torch.device:
        """Where the weights live; batches are built there and results come back to the CPU."""
        return next(self.student.parameters()).device

    def to(self, device: str | torch.device) -> "NerModel":
        """Move every module (student, teacher, loss net) to ``device``, in place; returns self.

        Also re-packs each LSTM's weights into the one buffer cuDNN wants: a deep copy (``clone``, the
        Mean Teacher) leaves them scattered, and cuDNN would then copy them on every call."""
        for m in self.modules():
            m.to(device)
            for sub in m.modules():
                if isinstance(sub, nn.LSTM):
                    sub.flatten_parameters()
        return self

    def encode(self, text: str) -> list[int]:
        return self.vocab.encode(text)

    # ---- inference -----------------------------------------------------------------------------
    def predict(
        self,
        texts: Sequence[str],
        batch_chars: int = 12800,
        max_batch: int = 64,
        return_marginals: bool = False,
        tagger: Tagger | None = None,
        with_lossnet: bool = True,
        workers: int = 1,
    ) -> list[RecordScore]:
        """Entities with confidences and L_min/L_max/P(y_max)/L_pred per text (``with_lossnet=False`` skips
        the loss net, which costs more than the tagger, when only entities are wanted). Read-only on the model,
        so concurrent calls are safe; never call it on a model that is being trained.

        ``workers`` > 1 runs batches in that many threads, or a single batch's two Bi-LSTM directions on two
        threads (``prediction.run_batches``); it assumes one torch thread per Python thread, which the
        process sets once at start.
        """
        lossnet = self.lossnet if with_lossnet else None
        batches = plan_batches(texts, self.encode, self.max_len, max_batch, batch_chars)
        score = partial(score_batch, tagger=tagger or self.served, lossnet=lossnet, return_marginals=return_marginals)
        results = run_batches(batches, score, workers)
        return aggregate(texts, batches, results, self.scheme, lossnet is not None, return_marginals)

    # ---- persistence ---------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        enc = self.student.encoder
        return {
            "format": FORMAT_VERSION,
            "labels": self.labels,
            "max_len": self.max_len,
            "encoder": enc.spec,
            "vocab": self.vocab.to_list() if isinstance(self.vocab, CharVocab) else None,
            "serve": self.serve,
            "lossnet_kind": self.lossnet_kind,
            "lpn_layers": self.lpn_layers,
            "has_teacher": self.teacher is not None,
            "meta": self.meta,
        }

    def save(self, directory: str | Path) -> None:
        """Atomically write the checkpoint directory (see ``atomic.atomic_directory``)."""
        weights = {
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict() if self.teacher is not None else {},
            "lossnet": self.lossnet.state_dict() if self.lossnet is not None else {},
        }
        with atomic_directory(directory) as tmp:
            if self.tokenizer is not None:
                enc_dir = tmp / "encoder"
                self.tokenizer.save_pretrained(str(enc_dir))
                self.student.encoder.model.config.save_pretrained(str(enc_dir))
            write_checkpoint(tmp, self.config(), weights)

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> "NerModel":
        """The checkpoint in ``directory``, on ``device`` (built on the CPU, then moved)."""
        d = Path(directory)
        target = resolve_device(device)
        config, weights = read_checkpoint(d, map_location="cpu")
        if config.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{d}: checkpoint format {config.get('format')} is not {FORMAT_VERSION}")
        scheme = LabelScheme.from_labels(config["labels"])
        try:
            student, teacher, lossnet, tokenizer = _load_modules(d, config, weights, scheme.num_tags)
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{d}: weights do not fit the config: {exc}") from None
        vocab: CharVocab | TransformerVocab = CharVocab(config["vocab"]) if config["encoder"]["kind"] == "char" else student.encoder.tvocab
        model = cls(scheme, vocab, student, teacher, lossnet, config["serve"], config["max_len"], config.get("meta"), tokenizer)
        report_lexicon_drift(d, config["encoder"].get("knowledge", {}))
        return model.to(target)


def _build_tagger(directory: Path, config: dict[str, Any], num_tags: int) -> tuple[Tagger, Any]:
    """An untrained tagger of the checkpoint's encoder spec, and the tokenizer of a transformer encoder."""
    spec = config["encoder"]
    if spec["kind"] == "char":
        return Tagger(CharBiLSTMEncoder.from_spec(len(config["vocab"]) + 2, spec), num_tags), None
    enc, tokenizer = load_transformer(spec["source"], spec["hidden"], spec["dropout"], from_saved=directory / "encoder")
    return Tagger(enc, num_tags), tokenizer


def _load_modules(directory: Path, config: dict[str, Any], weights: dict[str, Any], num_tags: int) -> tuple[Tagger, Tagger | None, LossNet | None, Any]:
    """Student, teacher, loss net and tokenizer with the checkpoint's weights."""
    student, tokenizer = _build_tagger(directory, config, num_tags)
    student.load_state_dict(weights["student"])
    teacher = None
    if config["has_teacher"]:
        teacher, tokenizer = _build_tagger(directory, config, num_tags)
        teacher.load_state_dict(weights["teacher"])
    # checkpoints from before the setting existed hold the paper's 2-layer LPN
    lossnet = build_lossnet(config["lossnet_kind"], student.encoder, _saved_lpn_layers(config))
    if lossnet is not None:
        lossnet.load_state_dict(weights["lossnet"])
    return student, teacher, lossnet, tokenizer
