"""Shared pytest set-up: the container fixtures (container_engine, bento_image_builder) for every test module."""

pytest_plugins = ["tests.container_support"]
