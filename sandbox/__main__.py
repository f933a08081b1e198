"""``python -m sandbox [--host 127.0.0.1] [--port 8090] [--webhook-url URL]``

Serves the sandbox from ONE process (werkzeug's threaded server): all state is in memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from werkzeug.serving import make_server

from sandbox.app import create_sandbox_app
from sandbox.config import DEFAULT_PORT, ConfigError, SandboxConfig


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, bind, announce where we listen, serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--webhook-url", help="the service's NCS URL (overrides "
                        "SANDBOX_WEBHOOK_URL)")
    parser.add_argument("--quiet", action="store_true", help="no per-request access log")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        config = SandboxConfig.from_env()
        if args.webhook_url is not None:
            config = dataclasses.replace(config, webhook_url=args.webhook_url)
        app = create_sandbox_app(config)
    except ConfigError as exc:
        sys.stderr.write(f"sandbox: {exc}\n")
        return 2
    server = make_server(args.host, args.port, app, threaded=True)
    sys.stdout.write(
        f"sandbox listening on http://{args.host}:{server.server_port} "
        f"(ConvoAI: /convoai, SIP: /sip/v1/api/pstn, control: /_sandbox, "
        f"webhook: {config.webhook_url or 'none'})\n"
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.extensions["sandbox"].stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
