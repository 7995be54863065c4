"""Prove that MLflow model versions are what they claim to be.

Python API (importing it is cheap: MLflow itself runs only in worker processes)::

    from mlflow_version_check import check_model_version
    result = check_model_version("Sklearn_Wine", "production", tracking_uri="http://localhost:5000")
    assert result.equals
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AuditResult",
    "CheckResult",
    "CompareResult",
    "SealResult",
    "VerifyResult",
    "VersionCheckError",
    "__version__",
    "audit_registry",
    "check_model_version",
    "compare_model_versions",
    "seal_model_version",
    "verify_model_version",
]

if TYPE_CHECKING:
    from .audit import audit_registry
    from .core import check_model_version, compare_model_versions, seal_model_version, verify_model_version
    from .errors import VersionCheckError
    from .results import AuditResult, CheckResult, CompareResult, SealResult, VerifyResult

_LAZY = {
    "audit_registry": ("audit", "audit_registry"),
    "AuditResult": ("results", "AuditResult"),
    "check_model_version": ("core", "check_model_version"),
    "compare_model_versions": ("core", "compare_model_versions"),
    "seal_model_version": ("core", "seal_model_version"),
    "verify_model_version": ("core", "verify_model_version"),
    "CheckResult": ("results", "CheckResult"),
    "CompareResult": ("results", "CompareResult"),
    "SealResult": ("results", "SealResult"),
    "VerifyResult": ("results", "VerifyResult"),
    "VersionCheckError": ("errors", "VersionCheckError"),
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `--help` and `import mlflow_version_check` stay fast.
    if name in _LAZY:
        from importlib import import_module

        module, attribute = _LAZY[name]
        return getattr(import_module(f".{module}", __name__), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
