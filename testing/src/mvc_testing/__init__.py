"""Test support for mlflow-version-check, shared by its tests, benchmarks, demo and self-test workflow.

`servers` starts real `mlflow server` processes on loopback ports; `models` logs and registers example
models on them. A separate distribution (testing/pyproject.toml), never part of the shipped wheel.
"""
