"""WSGI entry point: ``gunicorn --workers 1 --threads 8 --timeout 0 _wsgi:app``.

One worker only: the serving model and the training state live in process memory (PROTOCOL.md §10.9).
Configuration comes from the environment (see ``lasl_backend.config``); a bad value stops start-up.
"""

import logging

from lasl_backend.serving.backend import LaslBackend
from lasl_backend.config import Settings
from lasl_backend.serving.routes import init_app

settings = Settings.from_env()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = init_app(LaslBackend, settings=settings)
