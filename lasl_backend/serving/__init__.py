"""The Label Studio ML backend: the HTTP routes, the per-project backend, training runs, the model store."""

from .routes import init_app
from .server import serve

__all__ = ["init_app", "serve"]
