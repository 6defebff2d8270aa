"""Project tooling run from the repository root (scripts/container.py, ...)."""
