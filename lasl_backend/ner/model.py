"""The text-level NER model: what the CLI, the simulator and the Label Studio backend hold.

``NerModel`` bundles the label scheme, the character → id mapping, the student tagger, the Mean-Teacher
tagger (optional), and a loss-prediction net (optional). ``predict`` takes whole records, chunks them,
batches chunks by length, and returns per-record entities with confidences plus the record's
active-learning quantities, aggregated over its chunks by sum (a record's loss is the sum of its
chunks' losses; METHOD.md gap 4).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from .batching import collate, length_batches, make_chunks
from ..atomic import atomic_directory
from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from .encoders import CharBiLSTMEncoder, TransformerVocab, load_transformer, parallel_directions
from .lossnet import LearningLossNet, LossPredictionNet
from .spans import LabelScheme, tags_to_entities
from .tagger import Tagger
from .vocab import CharVocab

FORMAT_VERSION = 1
LOSSNET_KINDS = ("lpn", "learning_loss")


@dataclass
class SpanPrediction:
    start: int
    end: int
    label: str
    text: str
    score: float  # mean marginal probability of the predicted tags over the span


@dataclass
class RecordScore:
    entities: list[SpanPrediction]
    l_min: float
    l_max: float
    p_max: float
    l_pred: float | None
    n_chars: int
    n_chunks: int = 1  # chunks the record was cut into: l_pred / n_chunks is the offset-free mean
    marginals: np.ndarray | None = field(default=None, repr=False)  # [n_chars, K], only when asked


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a device this process can use, or a ValueError that says
    why not (a CPU-only torch build, a GPU index that does not exist), before any model is built on it."""
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = torch.device("meta")  # any other type: refused below with the one message
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r} is not valid: expected cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: this torch build ({torch.__version__}) sees no CUDA GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r}: MPS is not available on this machine")
    return dev


#: the paper's LPN: a serial encoder of two Bi-LSTM layers (Table 6); 0 = its shared-encoder structure
DEFAULT_LPN_LAYERS = 2


def build_lossnet(kind: str | None, tagger: Tagger, lpn_layers: int = DEFAULT_LPN_LAYERS) -> nn.Module | None:
    """A fresh loss net of ``kind`` over ``tagger``'s features; ``lpn_layers`` sizes the LPN."""
    if kind is None:
        return None
    if kind == "lpn":
        return LossPredictionNet(feature_dim=tagger.encoder.out_dim, num_layers=lpn_layers)
    if kind == "learning_loss":
        return LearningLossNet(tagger.encoder.layer_dims)
    raise ValueError(f"unknown loss net {kind!r}; choose one of {LOSSNET_KINDS}")


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
        lossnet: nn.Module | None = None,
        lossnet_kind: str | None = None,
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
        self.lossnet_kind = lossnet_kind
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
    ) -> "NerModel":
        """A fresh model. ``encoder`` is ``"char"`` (embeddings trained from scratch, vocabulary from
        ``texts``) or a local directory / hub id of a pretrained BERT-like model."""
        torch.manual_seed(seed)
        scheme = LabelScheme.from_labels(labels)
        tokenizer = None
        if encoder == "char":
            vocab: CharVocab | TransformerVocab = CharVocab.build(texts)
            enc: nn.Module = CharBiLSTMEncoder(len(vocab), emb_dim=emb_dim, hidden=hidden, dropout=dropout)
        else:
            enc, tokenizer = load_transformer(encoder, hidden=hidden, dropout=dropout)
            vocab = enc.tvocab
        student = Tagger(enc, scheme.num_tags)
        lossnet = build_lossnet(lossnet_kind, student, lpn_layers)
        return cls(scheme, vocab, student, None, lossnet, lossnet_kind, "student", max_len, tokenizer=tokenizer)

    def clone(self) -> "NerModel":
        """A deep copy to fine-tune, leaving this (serving) model untouched."""
        tok, self.tokenizer = self.tokenizer, None
        try:
            other = copy.deepcopy(self)
        finally:
            self.tokenizer = tok
        other.tokenizer = tok
        return other

    def extend_vocab(self, texts: Iterable[str]) -> int:
        """Give characters first seen in ``texts`` their own embedding rows (char encoder only)."""
        if not isinstance(self.vocab, CharVocab):
            return 0
        new = sorted({c for t in texts for c in t} - set(self.vocab.stoi))
        if not new:
            return 0
        self.vocab = CharVocab(self.vocab.to_list() + new)
        for tagger in (self.student, self.teacher):
            if tagger is not None:
                tagger.encoder.grow_vocab(len(self.vocab))
        if self.teacher is not None:  # the teacher's new rows start equal to the student's
            with torch.no_grad():
                self.teacher.encoder.embedding.weight[-len(new):] = self.student.encoder.embedding.weight[-len(new):]
        return len(new)

    # ---- properties ----------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        return list(self.scheme.labels)

    @property
    def served(self) -> Tagger:
        return self.teacher if (self.serve == "teacher" and self.teacher is not None) else self.student

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

        ``workers`` > 1 runs batches in that many threads with one torch thread each: this Bi-LSTM's small
        matrix products do not speed up with intra-op threads, but independent batches on separate cores do.
        With a single batch (one short record: the /predict case) it runs each Bi-LSTM's two directions on
        two threads instead.
        """
        tagger = tagger or self.served
        n = len(texts)
        chunks = make_chunks(texts, self.encode, self.max_len)
        batches = [[chunks[i] for i in b] for b in length_batches(chunks, max_batch=max_batch, max_chars=batch_chars)]
        use_lossnet = with_lossnet and self.lossnet is not None

        def run(cs: list) -> dict[str, Any]:
            return self._score_batch(cs, tagger, use_lossnet, return_marginals)

        if workers > 1 and len(batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            prev = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(max_workers=workers) as ex:
                    results = list(ex.map(run, batches))
            finally:
                torch.set_num_threads(prev)
        elif workers > 1:
            with parallel_directions():
                results = [run(cs) for cs in batches]
        else:
            results = [run(cs) for cs in batches]

        l_min = np.zeros(n)
        l_max = np.zeros(n)
        l_pred = np.zeros(n)
        n_chunks = np.zeros(n, dtype=np.int64)
        ents: list[list[SpanPrediction]] = [[] for _ in range(n)]
        margs: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(n)]
        for cs, res in zip(batches, results):
            cum, paths = res["cum"], res["paths"]
            for j, c in enumerate(cs):
                r, k = c.record, len(c.ids)
                l_min[r] += res["l_min"][j]
                l_max[r] += res["l_max"][j]
                n_chunks[r] += 1
                if res["l_pred"] is not None:
                    l_pred[r] += res["l_pred"][j]
                text = texts[r]
                for e in tags_to_entities(paths[j, :k], self.scheme, offset=c.start):
                    a, z = e.start - c.start, e.end - c.start
                    conf = float((cum[j, z] - cum[j, a]) / (z - a))
                    ents[r].append(SpanPrediction(e.start, e.end, e.label, text[e.start : e.end], conf))
                if return_marginals:
                    margs[r].append((c.start, res["marginals"][j, :k]))
        out = []
        for r in range(n):
            m = None
            if return_marginals:
                parts = [a for _, a in sorted(margs[r], key=lambda t: t[0])]
                m = np.concatenate(parts) if parts else np.zeros((0, self.scheme.num_tags), np.float32)
            out.append(
                RecordScore(
                    entities=sorted(ents[r], key=lambda s: s.start),
                    l_min=float(l_min[r]),
                    l_max=float(l_max[r]),
                    p_max=math.exp(-float(l_min[r])),
                    l_pred=float(l_pred[r]) if use_lossnet else None,
                    n_chars=len(texts[r]),
                    n_chunks=int(n_chunks[r]),
                    marginals=m,
                )
            )
        return out

    @torch.no_grad()
    def _score_batch(self, cs: list, tagger: Tagger, use_lossnet: bool, return_marginals: bool) -> dict[str, Any]:
        """The tensor work for one batch of chunks, returned as numpy arrays (safe to run in a thread)."""
        ids, mask, _ = collate(cs, next(tagger.parameters()).device)
        em, layers = tagger(ids, mask)
        b = tagger.bounds(em, mask, with_marginals=True)
        assert b.marginals is not None
        path_p = b.marginals.gather(2, b.best_path.unsqueeze(2)).squeeze(2)
        # prefix sums turn each span's mean confidence into two lookups
        cum = torch.cat([path_p.new_zeros(len(cs), 1), path_p.cumsum(1)], dim=1).cpu().numpy()
        return {
            "l_min": b.l_min.cpu().numpy(),
            "l_max": b.l_max.cpu().numpy(),
            "l_pred": self._lossnet_scores(layers, mask, b) if use_lossnet else None,
            "paths": b.best_path.cpu().numpy(),
            "cum": cum,
            "marginals": b.marginals.cpu().numpy().astype(np.float32) if return_marginals else None,
        }

    @torch.no_grad()
    def _lossnet_scores(self, layers: list[torch.Tensor], mask: torch.Tensor, b: Any) -> np.ndarray:
        if self.lossnet_kind == "lpn":
            bounds = torch.stack([b.l_min, b.l_max], dim=1).float()
            return self.lossnet(layers[-1], mask, bounds).double().cpu().numpy()  # type: ignore[misc]
        return self.lossnet(layers, mask).double().cpu().numpy()  # type: ignore[misc]

    @property
    def lpn_layers(self) -> int | None:
        """Bi-LSTM layers of the LPN (0 = shared-encoder structure); None without an LPN."""
        if self.lossnet_kind != "lpn" or self.lossnet is None:
            return None
        return int(self.lossnet.num_layers)  # type: ignore[union-attr, arg-type]

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
        d = Path(directory)
        target = resolve_device(device)
        config, weights = read_checkpoint(d, map_location="cpu")  # built on the CPU, then moved
        if config.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{d}: checkpoint format {config.get('format')} is not {FORMAT_VERSION}")
        scheme = LabelScheme.from_labels(config["labels"])
        spec = config["encoder"]
        tokenizer = None

        def make_tagger() -> Tagger:
            nonlocal tokenizer
            if spec["kind"] == "char":
                enc: nn.Module = CharBiLSTMEncoder(len(config["vocab"]) + 2, spec["emb_dim"], spec["hidden"], spec["dropout"])
            else:
                enc, tokenizer = load_transformer(spec["source"], spec["hidden"], spec["dropout"], from_saved=d / "encoder")
            return Tagger(enc, scheme.num_tags)

        try:
            student = make_tagger()
            student.load_state_dict(weights["student"])
            teacher = None
            if config["has_teacher"]:
                teacher = make_tagger()
                teacher.load_state_dict(weights["teacher"])
            # checkpoints from before the setting existed hold the paper's 2-layer LPN
            lossnet = build_lossnet(config["lossnet_kind"], student, _saved_lpn_layers(config))
            if lossnet is not None:
                lossnet.load_state_dict(weights["lossnet"])
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{d}: weights do not fit the config: {exc}") from None
        vocab: CharVocab | TransformerVocab = CharVocab(config["vocab"]) if spec["kind"] == "char" else student.encoder.tvocab
        model = cls(scheme, vocab, student, teacher, lossnet, config["lossnet_kind"], config["serve"], config["max_len"], config.get("meta"), tokenizer)
        return model.to(target)
