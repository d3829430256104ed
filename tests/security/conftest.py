"""tests/security: the session's secure broker (_secure.py)."""

from _secure import secure_cluster  # noqa: F401
