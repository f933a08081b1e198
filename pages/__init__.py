"""The pages, one UI: the operator's dashboard at /dashboard (live and recent calls, each call's
timeline and transcript, charts, the diary of bookings, outbound campaigns; server-rendered
behind a sign-in with ADMIN_TOKEN, docs/dashboard.md) and, in sandbox mode, its sandbox panel
(a test-call button), which / also shows with the calls it follows. Templates and CSS are the
dashboard's, shared by both.
"""

from flask import Blueprint

from web.pages_security import check_csrf

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
               static_folder="static")
# Forms and cookie-authenticated requests carry the session's CSRF token; checked before the
# sign-in guard, so a forged sign-out is refused rather than redirected.
bp.before_request(check_csrf)

# The modules add their routes to bp (sign-in first: it guards every page); pages.sandbox also
# holds the blueprints for /.
from pages import campaigns, diary, login, sandbox, views  # noqa: E402, F401
