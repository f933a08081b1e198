"""The home page at ``/``: a live view of calls and a "Place a test call" button in sandbox mode,
a one-line JSON identification in production mode."""
