"""Helpers the test tiers share: generated data, real DVC repositories, live servers, browsers, containers."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
