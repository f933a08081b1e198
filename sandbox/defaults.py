"""Placeholder credentials and addresses shared by the sandbox and the service in sandbox mode.

They are not secrets: they only ever unlock the local sandbox.
"""

SANDBOX_APP_ID = "5a4db0c5e0f64d8b9a1c2e3f4a5b6c7d"
SANDBOX_APP_CERTIFICATE = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SANDBOX_CUSTOMER_ID = "sandbox-customer"
SANDBOX_CUSTOMER_SECRET = "sandbox-secret"
SANDBOX_NCS_SECRET = "sandbox-ncs-secret"
DEFAULT_PORT = 8090
SANDBOX_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
