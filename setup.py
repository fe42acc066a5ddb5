"""Builds the optional C CRF kernel (lasl_backend/crf/_crfkernel.c); everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds, and lasl_backend.crf falls back to
its numpy kernel (same results; its CRF pass ~8x slower on one record and 4x on batches of 64 chunks, as
measured in docs/results.md, "Benchmarks"; ``lasl bench`` and /health say which one runs).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("lasl_backend.crf._crfkernel", ["lasl_backend/crf/_crfkernel.c"], extra_compile_args=["-O3"], optional=True),
    ],
)
