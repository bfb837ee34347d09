#!/usr/bin/env bash
# Builds the quixd image from deploy/docker/Dockerfile with podman where no registry is reachable,
# and prints the image name as its last line (or fails, saying why).
#
#   scripts/build-image.sh                 # builds quixd (release, --static-swift-stdlib) first
#   QUIXD_BINARY=PATH scripts/build-image.sh   # or takes that binary
#
# The Dockerfile's build stage needs the swift:6.x image; here quixd is built on the host
# instead and handed to the Dockerfile's `prebuilt` stage as the build context quixd-bin, and the
# runtime stage starts from a local Debian base made with debootstrap (scripts/lib-deploy.sh),
# kept in podman's image store so that the next run skips it. The image is
# localhost/quixd:VERSION (VERSION: `quixd --version`); its size goes to standard error.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-deploy.sh

command -v podman >/dev/null || deploy_die "podman is not installed (apt-get install podman runc)"
[ "$(id -u)" -eq 0 ] || deploy_die "needs root: debootstrap, and podman's image store of the tests"
deploy_base_slim

binary=$(deploy_quixd_binary)
version=$(deploy_version "$binary")
image="localhost/quixd:$version"
context="$DEPLOY_WORK/quixd-bin"
rm -rf "$context" && mkdir -p "$context"
cp "$binary" "$context/quixd"
cp "$(deploy_backtracer)" "$context/swift-backtrace-static"

started=$SECONDS
# What this build leaves behind goes afterwards: the image it replaces and the prebuilt stage's
# image, both untagged then (each new quixd would add about 400 MB). Dangling images that were
# there before stay. (podman build --layers=false would keep none, but fails in podman 4.3.)
dangling_before=$(podman images -q --no-trunc --filter dangling=true | sort)
previous=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
# --format docker: OCI images have no HEALTHCHECK, and podman healthcheck needs it.
if ! podman build --network host --pull=never --format docker -f deploy/docker/Dockerfile \
    --build-arg QUIXD_FROM=prebuilt --build-context "quixd-bin=$context" --build-arg "RUNTIME_BASE=$BASE_SLIM" \
    -t "$image" . >"$DEPLOY_WORK/image-build.log" 2>&1; then
    deploy_die "podman build failed; see $DEPLOY_WORK/image-build.log: $(tail -n 5 "$DEPLOY_WORK/image-build.log")"
fi
for leftover in $(comm -13 <(echo "$dangling_before") <(podman images -q --no-trunc --filter dangling=true | sort)); do
    podman rmi "$leftover" >/dev/null 2>&1 || true
done
size=$(podman image inspect --format '{{.Size}}' "$image")
deploy_log "built $image in $((SECONDS - started)) s: $((size / 1000000)) MB (quixd $(($(stat -c %s "$binary") / 1000000)) MB)"
echo "$image"
