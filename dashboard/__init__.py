"""The operator's dashboard at /dashboard: live and recent calls, each call's timeline and
transcript, and charts. Server-rendered pages behind a sign-in with ADMIN_TOKEN (docs/dashboard.md).
"""

from flask import Blueprint

from web.pages_security import check_csrf

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
               static_folder="static")
# Forms and cookie-authenticated requests carry the session's CSRF token; checked before the
# sign-in guard, so a forged sign-out is refused rather than redirected.
bp.before_request(check_csrf)

# The two modules add their routes to bp (sign-in first: it guards every page).
from dashboard import login, views  # noqa: E402, F401
