#!/usr/bin/env bash
# Build the local Debian base image (no Docker Hub here) and tag it as the Dockerfile's default,
# so that `docker build` and act resolve `FROM python:3.12-slim` locally. Reused when it exists.
#
# The Debian mirror comes only from the machine's own apt sources (the files `apt-config` names:
# Dir::Etc::sourcelist in the one-line format, Dir::Etc::sourceparts/*.list and *.sources), never
# from a host written here: each machine reaches its package archive through its own configuration.
# Tests point apt at a temporary configuration with apt's own APT_CONFIG variable.
#
#   scripts/ci/base-image.sh                 build (or reuse) the base image
#   scripts/ci/base-image.sh --print-mirror  print the mirror a build would use, build nothing
#
# Exit codes: 0 done; 2 no usable mirror in the apt sources, or an unknown option.
set -euo pipefail
suite=bookworm
tag="${BASE_IMAGE_TAG:-mvc-base:bookworm}"

# A path from apt's configuration (`apt-config shell` resolves it against Dir and Dir::Etc).
apt_path() {
  apt-config shell value "$1" 2>/dev/null | sed -n "s/^value='\(.*\)'$/\1/p" || true
}

# The first enabled `deb` source that serves "$suite main", in the order apt reads its files.
debian_mirror() {
  local sourcelist sourceparts
  sourcelist=$(apt_path Dir::Etc::sourcelist/f)
  sourceparts=$(apt_path Dir::Etc::sourceparts/d)
  local files=()
  [[ -n "$sourcelist" && -f "$sourcelist" ]] && files+=("$sourcelist")
  if [[ -n "$sourceparts" && -d "$sourceparts" ]]; then
    # apt reads only these two extensions (others, such as *.disabled, are ignored), sorted by name.
    while IFS= read -r -d '' part; do files+=("$part"); done \
      < <(find "$sourceparts" -maxdepth 1 -type f \( -name '*.list' -o -name '*.sources' \) -print0 | sort -z)
  fi
  local file found
  for file in "${files[@]}"; do
    if [[ "$file" == *.sources ]]; then
      # deb822 stanzas (blank-line separated); keys are case-insensitive, '#' lines are comments,
      # indented lines continue the previous field.
      found=$(awk -v suite="$suite" '
        BEGIN { RS = ""; FS = "\n" }
        {
          delete field; key = ""
          for (i = 1; i <= NF; i++) {
            line = $i
            if (line ~ /^#/) continue
            if (line ~ /^[ \t]/) { if (key != "") field[key] = field[key] " " line; continue }
            colon = index(line, ":")
            if (colon == 0) continue
            key = tolower(substr(line, 1, colon - 1))
            field[key] = substr(line, colon + 1)
          }
          if (tolower(field["enabled"]) ~ /^[ \t]*(no|false|off|0|disable|without)[ \t]*$/) next
          if ((" " field["types"] " ") !~ /[ \t]deb[ \t]/) next
          if ((" " field["suites"] " ") !~ ("[ \t]" suite "[ \t]")) next
          if ((" " field["components"] " ") !~ /[ \t]main[ \t]/) next
          count = split(field["uris"], uris, /[ \t]+/)
          for (u = 1; u <= count; u++) if (uris[u] ~ /^https?:\/\//) { print uris[u]; exit }
        }' "$file" 2>/dev/null) || found=""
    else
      # One-line entries: deb [options] URI suite component...; '#' starts a comment.
      found=$(awk -v suite="$suite" '
        { sub(/#.*/, ""); sub(/\[[^]]*\]/, "") }
        $1 == "deb" && $2 ~ /^https?:\/\// && $3 == suite {
          for (i = 4; i <= NF; i++) if ($i == "main") { print $2; exit }
        }' "$file" 2>/dev/null) || found=""
    fi
    if [[ -n "$found" ]]; then
      echo "${found%/}"
      return
    fi
  done
}

require_mirror() {
  mirror=$(debian_mirror)
  if [[ -z "$mirror" ]]; then
    echo "base-image.sh: cannot build $tag: no enabled apt source for Debian '$suite main' in" \
      "$(apt_path Dir::Etc::sourcelist/f) or $(apt_path Dir::Etc::sourceparts/d){*.list,*.sources}." \
      "Likely cause: this machine's apt sources name no Debian mirror, and debootstrap takes its" \
      "mirror only from them. Fix: add the machine's Debian mirror to its apt sources (a deb822" \
      "stanza with 'Suites: $suite' and 'Components: main'), or docker load a prebuilt $tag." >&2
    exit 2
  fi
}

case "${1:-}" in
  "") ;;
  --print-mirror) require_mirror; echo "$mirror"; exit 0 ;;
  *) echo "base-image.sh: unknown option '$1': the only option is --print-mirror" >&2; exit 2 ;;
esac

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists"
else
  # Before anything slow: without a mirror there is nothing to build from.
  require_mirror
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap $suite from $mirror"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$root" "$mirror" >/dev/null
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
