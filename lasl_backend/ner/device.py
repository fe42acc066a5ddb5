"""Where a model runs: the device name of ``--device`` / ``LASL_DEVICE`` checked before anything is built."""

from __future__ import annotations

import torch

DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps`` as a device this process can use, or a ValueError that says
    why not (a CPU-only torch build, a GPU index that does not exist), before any model is built on it."""
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = torch.device("meta")  # any other type: refused below with the one message
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"device {name!r} is not valid: expected cpu, cuda, cuda:N or mps")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: this torch build ({torch.__version__}) sees no CUDA GPU")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r}: MPS is not available on this machine")
    return dev
