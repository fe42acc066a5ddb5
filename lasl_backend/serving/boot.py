"""Process start-up of the server, once, before the app is built: ``lasl serve`` and ``_wsgi.py`` both
call :func:`boot`. Everything process-wide lives here (logging, torch threads, the device check), so
that ``init_app`` only builds an app and can be called any number of times (tests do).
"""

from __future__ import annotations

import gc
import logging

import torch

from ..config import ConfigError, Settings
from ..ner import LexiconError, check_term_file, crf_kernel_name, resolve_device
from .redaction import install_secret_filter
from .store import ModelStore

__all__ = ["LOG_FORMAT", "boot", "check_device", "clean_interrupted_writes"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


def check_device(settings: Settings) -> None:
    """LASL_DEVICE=cuda on a machine without a GPU stops the start with a clear message, instead of
    failing in the first training run or /predict."""
    try:
        resolve_device(settings.device)
    except ValueError as exc:
        raise ConfigError(f"LASL_DEVICE: {exc}") from None


def check_lexicon(settings: Settings) -> None:
    """A term file that cannot be read stops the server here, with its file and line, not in a training run."""
    if settings.lexicon is None:
        return
    try:
        check_term_file(settings.lexicon)
    except LexiconError as exc:
        raise ConfigError(f"LASL_LEXICON: {exc}") from None


def clean_interrupted_writes(store: ModelStore) -> int:
    """Remove the leftovers of version writes that a crash interrupted; returns how many."""
    n = 0
    try:
        projects = store.projects()
    except OSError:
        return 0
    for pid in projects:
        try:
            n += store.clean_tmp(pid)
        except OSError:
            pass
    return n


def boot(settings: Settings) -> None:
    """Check the settings that can only be checked here, then set up the process: logging with the
    secret filter, the ``lasl_backend`` log level, torch's threads (``LASL_TORCH_THREADS``; 0 leaves
    torch's default) and the store; last, move everything loaded so far out of the garbage collector's
    reach. Raises :class:`ConfigError` before changing anything."""
    check_device(settings)
    check_lexicon(settings)
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT)
    logging.getLogger("lasl_backend").setLevel(settings.log_level)
    install_secret_filter(settings.secrets())
    if settings.torch_threads:
        # one thread per torch call: the server's own threads give the parallelism, and several
        # OpenMP pools on few cores spin against each other (docs/operations.md, "Threads and cores")
        torch.set_num_threads(settings.torch_threads)
    if settings.torch_threads != 1 and (settings.score_workers > 1 or settings.train_threads > 1):
        log.warning("LASL_TORCH_THREADS=%d beside LASL_SCORE_WORKERS=%d and LASL_TRAIN_THREADS=%d: every scoring worker and the "
                    "loss net's training thread runs that many torch threads, and on few cores the thread pools spin against each "
                    "other; the workers assume 1", settings.torch_threads, settings.score_workers, settings.train_threads)
    if crf_kernel_name() != "c":
        log.warning("CRF kernel: %s; scoring still works, the CRF pass ~8x slower on one record and 4x on batches (docs/results.md, Benchmarks)", crf_kernel_name())
    clean_interrupted_writes(ModelStore(settings.model_dir))
    # The ~200k objects of torch, flask and the package live as long as the process; left tracked, every
    # full collection walks them, and scoring a pool (many small span objects) triggers many: frozen,
    # pool scoring runs ~20% faster with the server's modules loaded (measured in-process)
    gc.freeze()
