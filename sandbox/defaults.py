"""Placeholder credentials and addresses shared by the sandbox and the service in sandbox mode.

They are not secrets: they only ever unlock the local sandbox. The service's config owns them
(the sandbox depends on the service, never the reverse); they are re-exported here for the
sandbox and the tests.
"""

from config import (
    SANDBOX_APP_CERTIFICATE,
    SANDBOX_APP_ID,
    SANDBOX_CUSTOMER_ID,
    SANDBOX_CUSTOMER_SECRET,
    SANDBOX_NCS_SECRET,
    SANDBOX_PORT,
    SANDBOX_SIP_AUTH,
    SANDBOX_TOOLS_SECRET,
    SANDBOX_URL,
)

DEFAULT_PORT = SANDBOX_PORT

__all__ = [
    "DEFAULT_PORT", "SANDBOX_APP_CERTIFICATE", "SANDBOX_APP_ID", "SANDBOX_CUSTOMER_ID",
    "SANDBOX_CUSTOMER_SECRET", "SANDBOX_NCS_SECRET", "SANDBOX_SIP_AUTH", "SANDBOX_TOOLS_SECRET",
    "SANDBOX_URL",
]
