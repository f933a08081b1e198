"""The operator's dashboard at /dashboard: live and recent calls, each call's timeline and
transcript, and charts. Server-rendered pages behind a sign-in with ADMIN_TOKEN (docs/dashboard.md).
"""

from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates",
               static_folder="static")

# The two modules add their routes to bp (sign-in first: it guards every page).
from dashboard import login, views  # noqa: E402, F401
