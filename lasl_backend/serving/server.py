"""``lasl serve``: the app under gunicorn, in this process, after :func:`~.boot.boot`."""

from __future__ import annotations

from typing import Any

from ..config import ConfigError, Settings
from .boot import boot
from .routes import init_app

__all__ = ["serve"]


def _gunicorn_options(host: str, port: int, threads: int, log_level: str) -> dict[str, Any]:
    """1 worker (models live in process memory; a second worker would hold a second, diverging copy),
    ``threads`` threads, no timeout (a /predict of a whole project may take long; Label Studio has its
    own 100 s limit)."""
    return {
        "bind": f"{host}:{port}",
        "workers": 1,
        "threads": max(1, int(threads)),
        "worker_class": "gthread",
        "timeout": 0,
        "graceful_timeout": 30,
        "loglevel": log_level,
        "accesslog": "-" if log_level.lower() == "debug" else None,
    }


def serve(host: str = "0.0.0.0", port: int = 9090, threads: int = 8, log_level: str = "info") -> None:
    """Validate the environment and boot (a bad setting stops here, before gunicorn starts), then serve."""
    from gunicorn.app.base import BaseApplication  # gunicorn only for `lasl serve`, not for importing the app

    settings = Settings.from_env()
    boot(settings)
    options = _gunicorn_options(host, port, threads, log_level)

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for k, v in options.items():
                if v is not None:
                    self.cfg.set(k, v)

        def load(self) -> Any:
            return init_app(settings=settings)

    _App().run()


if __name__ == "__main__":  # pragma: no cover
    try:
        serve()
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
