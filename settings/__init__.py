"""The settings, in small groups: one frozen dataclass per concern, each validating its own fields.

``config.Settings`` inherits from every group, so the rest of the service keeps reading flat
attributes (``settings.work_lease_s``) from one object built by one constructor, while each
group's rules sit beside its fields. Checks that need more than one group (or the mode, which
follows from AGORA_APP_ID) live in config.py. This package imports no other package of the
service: personas, the sandbox and every feature read their settings from here, never the reverse.
"""
