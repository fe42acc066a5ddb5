"""The C bounds kernel (``_crfkernel.c``), loaded through ctypes, and the reason when it cannot be.

setup.py builds ``lasl_backend.crf._crfkernel`` as an optional extension; without a compiler the
package still works on the numpy kernel. The library is opened once, at import.
"""

from __future__ import annotations

import ctypes

import numpy as np

#: the C interface version of _crfkernel.c that this module calls
NATIVE_ABI = 1

BoundsArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, "np.ndarray | None"]


def _load_native() -> tuple[ctypes.CDLL | None, str]:
    """The C kernel's library, or None and the reason it is not there."""
    try:
        from . import _crfkernel  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"the C extension is not built ({exc}); reinstall with a C compiler"
    try:
        lib = ctypes.CDLL(_crfkernel.__file__)
        abi = int(lib.lasl_crf_abi_version())
    except (OSError, AttributeError) as exc:
        return None, f"the C extension does not load ({exc})"
    if abi != NATIVE_ABI:
        return None, f"the C extension is stale (interface {abi}, expected {NATIVE_ABI}); reinstall the package"
    fn = lib.lasl_crf_bounds
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 11
    return lib, "c"


_NATIVE, _NATIVE_STATUS = _load_native()


def native_available() -> bool:
    return _NATIVE is not None


def kernel_name() -> str:
    """Which kernel ``crf_bounds`` uses by default: ``"c"``, or ``"numpy (<why not C>)"``."""
    return "c" if _NATIVE is not None else f"numpy ({_NATIVE_STATUS})"


def bounds_c(em: np.ndarray, msk: np.ndarray, st: np.ndarray, en: np.ndarray, tr: np.ndarray, with_marginals: bool) -> BoundsArrays:
    """The C kernel (float64; ctypes releases the GIL, so scoring threads run it in parallel).

    Returns log Z, best score, best path, worst score, worst path and the marginals (or None)."""
    if _NATIVE is None:
        raise RuntimeError(f"the C CRF kernel is not available: {kernel_name()}")
    B, T, K = em.shape
    em = np.ascontiguousarray(em, np.float64)
    lengths = np.ascontiguousarray(msk.sum(1), np.int64)
    log_z, best, worst = np.empty(B), np.empty(B), np.empty(B)
    best_path, worst_path = np.empty((B, T), np.int64), np.empty((B, T), np.int64)
    marg = np.empty((B, T, K)) if with_marginals else None
    rc = _NATIVE.lasl_crf_bounds(
        B, T, K, em.ctypes.data, lengths.ctypes.data, st.ctypes.data, en.ctypes.data, tr.ctypes.data,
        log_z.ctypes.data, best.ctypes.data, best_path.ctypes.data, worst.ctypes.data, worst_path.ctypes.data,
        None if marg is None else marg.ctypes.data,
    )
    if rc == 1:
        raise MemoryError(f"C CRF kernel: out of memory for a [{B}, {T}, {K}] batch")
    if rc != 0:
        raise ValueError(f"C CRF kernel refused a [{B}, {T}, {K}] batch (error {rc})")
    return log_z, best, best_path, worst, worst_path, marg
