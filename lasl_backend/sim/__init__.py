"""``lasl simulate``: active learning replayed on a labeled train/test pair with an oracle (``simulate`` has
the whole story), and the tools that read its results: ``python -m lasl_backend.sim.results_table`` and
``python -m lasl_backend.sim.compare_lpn_sizes``."""
