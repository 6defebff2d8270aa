# The Bento's container image (scripts/container.py, scripts/install-container-tools.sh).
# The main Makefile includes this file after it defines BIN and the `install` and `bento` targets:
#   include scripts/container.mk
BENTO_NAME ?= prediction_service
# CONTAINER_ARGS: --local-base (no registry: local Debian base image + host CA bundle; also CONTAINER_LOCAL_BASE=1),
# --base-image IMAGE (podman/buildah), --trust-host-ca. CONTAINER_ENGINE=docker|podman|buildah overrides detection.
CONTAINER_ARGS ?=

.PHONY: container container-base container-tools

## container: build the image of the Bento `make bento` just built (the served set's exact models) with docker,
## podman or buildah; prints its tags and size
container: install bento
	$(BIN)/python scripts/container.py build --bento $$(cat .bento-tag) $(CONTAINER_ARGS)

## container-base: the registry-free base image localhost/bento-base:bookworm-py311 (reused when present)
container-base: install
	$(BIN)/python scripts/container.py base-image

## container-tools: podman, buildah, runc, debootstrap... from Debian packages (idempotent, needs root)
container-tools:
	bash scripts/install-container-tools.sh
