"""WSGI entry point: ``gunicorn --workers 1 --threads 8 --timeout 0 _wsgi:app``.

One worker only: the serving model and the training state live in process memory (PROTOCOL.md §10.9).
Configuration comes from the environment (see ``lasl_backend.config``); a bad value stops start-up.
"""

from lasl_backend.backend import LaslBackend
from lasl_backend.server import init_app

app = init_app(LaslBackend)
