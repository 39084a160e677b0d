"""Run the model server with uvicorn: loopback unless a token is configured, SIGTERM stops it.

`serve(settings)` refuses a non-loopback bind unless `serving.auth_token_env` names an
environment variable that holds a token (then every request but `/health` must send
`Authorization: Bearer <token>`). SIGTERM or Ctrl-C: uvicorn stops accepting, finishes the
requests in flight, runs the app's shutdown (alias refresher, model folders, online store) and
`serve` returns.
"""

from __future__ import annotations

import os
import signal
import sys

from lakegate_config.endpoints import check_port_free, is_loopback
from lakegate_config.redaction import redact
from lakegate_config.settings import Settings
from lakegate_errors import UserError


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to listen beyond loopback without a configured bearer token.

    Raises:
        UserError: `host` is not loopback and no token is configured; the message says how.
    """
    if is_loopback(host):
        return
    variable = settings.serving.auth_token_env
    if variable and os.environ.get(variable):
        return
    reason = (
        f"the variable {variable} is empty or unset"
        if variable
        else "serving.auth_token_env is not set"
    )
    raise UserError(
        f"refusing to serve on {host}, beyond loopback, without authentication ({reason}); set "
        "serving.auth_token_env in conf/<env>.yaml to a variable holding a secret token, or "
        "serve on 127.0.0.1"
    )


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    alias_refresh_seconds: float | None = None,
) -> None:
    """Serve the registry's models over HTTP until SIGTERM or Ctrl-C.

    Raises:
        UserError: a non-loopback host without authentication.
        EnvironmentProblem: the port is taken.
    """
    import uvicorn

    from model_server.app import create_app
    from model_server.models import (
        REGISTRY_CLIENT_DEFAULTS,
        preload_model_libraries_in_background,
    )

    host = host or settings.serving.host
    port = settings.serving.port if port is None else port
    refresh = alias_refresh_seconds or settings.serving.alias_refresh_seconds
    check_bind(host, settings)
    check_port_free(host, port)
    for variable, value in REGISTRY_CLIENT_DEFAULTS.items():
        os.environ.setdefault(variable, value)
    # The model libraries import in the background while the server starts: a fresh process
    # spends seconds on them (tens on a loaded machine), which would all fall on the first
    # request; the first model load waits for the thread instead of importing beside it.
    preload_model_libraries_in_background()
    app = create_app(settings, alias_refresh_seconds=refresh)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down; this handler takes
    # it, so the process ends through `serve` returning (exit 0) instead of being killed.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    where = f"http://{host}:{port}"
    print(
        f"serving models of {redact(settings.registry_uri)} on {where} "
        f"(POST /MODEL/VERSION_OR_ALIAS/predict, .../predict-by-key; GET /health, /metrics); "
        f"aliases re-resolved every {refresh:g} s; stop with SIGTERM or Ctrl-C",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("model server stopped", file=sys.stderr, flush=True)
