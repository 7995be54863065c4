#!/usr/bin/env bash
# Build the local Debian base image (no Docker Hub here) and tag it as the Dockerfile's default,
# so that `docker build` and act resolve `FROM python:3.12-slim` locally. Reused when it exists.
set -euo pipefail
tag="${BASE_IMAGE_TAG:-mvc-base:bookworm}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists"
else
  mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror="${mirror:-http://deb.debian.org/debian}"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm from $mirror"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >/dev/null
  # The registries are reached through a TLS proxy whose CA only the host's bundle has.
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
  echo "base image $tag built"
fi
# act builds the action's Dockerfile without build arguments and runs jobs in -P images.
docker tag "$tag" python:3.12-slim
