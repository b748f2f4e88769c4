"""``stop-slu serve``: a trained model behind a web page and an HTTP API.

``serve(source, host, port, config)`` loads any model ``stop-slu parse``
accepts (``stop_slu.inference.load_parser``) and runs the ASGI application of
``stop_slu.serve.app`` on uvicorn until SIGINT or SIGTERM; requests in flight
are answered before it stops. See docs/serving.md.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from stop_slu.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app", "serve", "is_loopback"]

GRACEFUL_SHUTDOWN_S = 30  # longest wait for requests in flight when stopping


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(source, host: str = "127.0.0.1", port: int = 8000, config: ServeConfig = ServeConfig(), device: str = "cpu"):
    """Serve the model ``source`` on ``host:port`` (port 0: any free port)
    until interrupted. Prints the address once it listens. Raises
    ModelFolderError for a source that is not a model."""
    import uvicorn

    from stop_slu.inference import load_parser
    from stop_slu.serve.examples import find_examples

    if not is_loopback(host):
        print(
            f"warning: --host {host}: the service is reachable from other machines, without authentication "
            "or HTTPS; browsers allow the microphone only on localhost or HTTPS: put a reverse proxy with "
            "HTTPS in front of it (docs/serving.md)",
            file=sys.stderr,
            flush=True,
        )
    parser = load_parser(source, device=device)
    name = Path(str(source)).resolve().name if Path(str(source)).is_dir() else str(source)
    app = create_app(parser, config, examples=find_examples(source), name=name)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started:
                bound = self.servers[0].sockets[0].getsockname()
                shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
                print(f"serving {name} at http://{shown}:{bound[1]}/  (API: /docs; Ctrl+C stops)", flush=True)

    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )
    Server(uvicorn_config).run()
