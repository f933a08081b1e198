"""Agora Notification Center Service (NCS): signatures, event parsing and the webhook view."""
