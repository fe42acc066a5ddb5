"""Development tools: benchmarks, the load test, the demo, a real Label Studio for tests, synthetic records.

Nothing in the product imports this package except the ``lasl bench`` command, lazily; the Docker image
leaves it out. Every tool runs from an installed package as ``python -m lasl_backend.devtools.<name>``:

- ``bench`` (``lasl bench``): the model benchmarks, in ``bench_scoring``, ``bench_crf``, ``bench_training``;
  ``bench_server`` (``lasl bench --server``): the serving benchmarks against a real Label Studio, in
  ``bench_queue``, ``bench_predict``, ``bench_push``; ``queue_bench``, ``lpn_speed``,
  ``profile_one_record``, ``load_test``, ``webhook_flood`` and ``bench_dashboard``: single measurements of their own;
- the pieces they share: ``measure`` (percentiles, wall times, progress lines), ``torch_timing`` (torch threads per measured
  section), ``records`` (the data they run on), ``payloads`` (Label Studio-shaped requests and the answer
  check), ``clients`` (HTTP), ``backend_process`` (``lasl serve`` as a subprocess), ``backend_state`` (what
  a running backend reports), ``processes`` (ports, health polling, process groups);
- ``labelstudio_dev``: installs and runs Label Studio 1.23.2; ``demo``: Label Studio + the backend + a
  synthetic project; ``synthetic``: Chinese EMR records with gold entities.
"""
