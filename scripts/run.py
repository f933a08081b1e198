"""`make run`: the service under gunicorn and, in sandbox mode, the local sandbox beside it.

One command starts both, one Ctrl-C stops both. With AGORA_APP_ID set, only the service runs,
against Agora.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import ConfigError, Settings  # noqa: E402
from personas.startup import load_settings  # noqa: E402

#: The personas in personas/*.toml, each with a ready script in sandbox/scripts/.
BUILT_IN_PERSONAS = ("triage", "support", "tarot", "orders", "appointments")


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"phone-agent: {exc}\n")
        return 1
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    service_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    children: list[subprocess.Popen[bytes]] = []

    def stop_all(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    env = dict(os.environ)
    try:
        if settings.sandbox and _uses_sandbox(settings):
            sandbox = urlsplit(settings.sandbox_url)
            if not _port_free(sandbox.hostname or "127.0.0.1", sandbox.port or 80):
                sys.stderr.write(f"phone-agent: {settings.sandbox_url} is already in use; stop "
                                 "what runs there or set SANDBOX_URL to another port\n")
                return 1
            env.update(_tool_settings(settings))
            env.update({
                "SANDBOX_APP_ID": settings.agora_app_id,
                "SANDBOX_APP_CERTIFICATE": settings.agora_app_certificate,
                "SANDBOX_CUSTOMER_ID": settings.agora_customer_id,
                "SANDBOX_CUSTOMER_SECRET": settings.agora_customer_secret,
                "SANDBOX_NCS_SECRET": settings.agora_ncs_secret,
                "SANDBOX_CONVOAI_NCS_SECRET": settings.agora_convoai_ncs_secret,
                "SANDBOX_WEBHOOK_URL": f"{service_url}/webhook",
                # The simulated gateway's lookups carry the header the service expects.
                "SANDBOX_LOOKUP_AUTH": settings.sip_lookup_auth or (
                    f"Bearer {settings.sip_lookup_token}" if settings.sip_lookup_token else ""),
            })
            children.append(subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--host", sandbox.hostname or "127.0.0.1",
                 "--port", str(sandbox.port or 80)], cwd=ROOT, env=env))
            if not _wait_for(f"{settings.sandbox_url}/_sandbox/health", children[-1]):
                stop_all()
                sys.stderr.write("phone-agent: the sandbox did not start (see above)\n")
                return 1
        if not _port_free(host, port):
            stop_all()
            sys.stderr.write(f"phone-agent: port {port} is already in use; set PORT to another\n")
            return 1
        children.append(subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "app:app", "--bind", f"{host}:{port}"],
            cwd=ROOT, env=env))
        if _wait_for(f"{service_url}/healthz", children[-1]):
            _banner(settings, service_url)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        return next(c.returncode for c in children if c.poll() is not None) or 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all()


def _tool_settings(settings: Settings) -> dict[str, str]:
    """What sandbox mode adds for tools: one SHOP_TOOLS_SECRET for the service (which signs the
    orders persona's requests with it) and the sandbox's demo shop (which checks them), random
    unless set; and, unless PERSONA_ROUTES or PERSONAS_DIR is set, routes that send a
    ``<persona>_...`` channel to each built-in persona, as ``flask simulate call --script``
    and the sandbox's scripted test calls (the dashboard panel's select) name their channels."""
    added: dict[str, str] = {}
    if not os.environ.get("SHOP_TOOLS_SECRET"):
        added["SHOP_TOOLS_SECRET"] = "whsec_" + base64.b64encode(
            secrets.token_bytes(32)).decode()
    if not settings.persona_routes and not settings.personas_dir:
        added["PERSONA_ROUTES"] = ",".join(f"{name}_*={name}" for name in BUILT_IN_PERSONAS)
    return added


def _uses_sandbox(settings: Settings) -> bool:
    return settings.convoai_api_url.startswith(settings.sandbox_url.rstrip("/"))


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_for(url: str, child: subprocess.Popen[bytes], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _banner(settings: Settings, service_url: str) -> None:
    lines = [
        "",
        f"  phone-agent is running at {service_url}  ({settings.mode} mode)",
        f"    NCS webhook:  POST {service_url}/webhook",
        f"    health:       {service_url}/healthz   readiness: {service_url}/readyz",
    ]
    if settings.sandbox:
        lines += [
            f"    sandbox:      {settings.sandbox_url}  (stands in for Agora; no real calls)",
            f"    agents:       {settings.sandbox_url}/_sandbox/agents",
            "  Next, in another shell:  make call   (one simulated call, with its timeline)",
            "    or a call whose agent uses tools:  flask simulate call --script tarot",
            "    (triage, support, tarot, orders, appointments: sandbox/scripts/)",
        ]
    lines += ["  Ctrl-C stops everything.", ""]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
