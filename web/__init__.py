"""Request plumbing shared by every blueprint: JSON errors, the admin token, rate limits, CORS,
headers, CSRF and keep-alive. Imports no feature package."""
