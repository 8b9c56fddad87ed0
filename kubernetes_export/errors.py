"""The one error of the export: its message names the file or profile and the key."""

from __future__ import annotations


class ExportError(ValueError):
    """The deployment cannot be exported as it is; the message says where and what to do."""


class CannotExpress(ExportError):
    """A profile uses something Kubernetes (KubeSpawner) has no way to express."""

    def __init__(self, profile: str, key: str, why: str) -> None:
        super().__init__(f"profile {profile!r}: {key}: {why}")
        self.profile = profile
        self.key = key
