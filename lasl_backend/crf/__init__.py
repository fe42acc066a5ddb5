"""Exact linear-chain CRF math (see ``bounds`` for the float64 active-learning kernel)."""

from .bounds import CRFBounds, crf_bounds, kernel_name, log_partition, nll, reverse_within_length, sequence_score

__all__ = ["CRFBounds", "crf_bounds", "kernel_name", "log_partition", "nll", "reverse_within_length", "sequence_score"]
