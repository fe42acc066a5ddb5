"""WSGI entry point: ``gunicorn --workers 1 --threads 8 --timeout 0 _wsgi:app``.

One worker only: the serving model and the training state live in process memory (docs/serving.md,
"The protocol"). Configuration comes from the environment (see ``lasl_backend.config``); a bad value
stops start-up. ``boot`` sets up the process exactly as ``lasl serve`` does.
"""

from lasl_backend.config import Settings
from lasl_backend.serving.boot import boot
from lasl_backend.serving.routes import init_app

settings = Settings.from_env()
boot(settings)
app = init_app(settings=settings)
