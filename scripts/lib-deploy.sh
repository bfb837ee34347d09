# Shared by build-image.sh, package-deb.sh and test-deploy.sh (sourced, not run): podman as it
# works on these machines, the local Debian base images, the host-built quixd.
#
# - podman runs with deploy/test/containers.conf (CONTAINERS_CONF: nothing under /etc changes):
#   runc (crun fails with "cgroups in hybrid mode not supported") and no default ulimits
#   (raising rlimits is not permitted in the sandbox: "setrlimit … Operation not permitted").
# - Base images come from debootstrap with the mirror of the machine's apt sources, since no
#   registry is reachable; they stay in podman's image store, so a second run reuses them.

DEPLOY_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CONTAINERS_CONF="$DEPLOY_ROOT/deploy/test/containers.conf"
# Work files (rootfs, build context, .deb): gitignored, like every .build-* directory.
DEPLOY_WORK="$DEPLOY_ROOT/.build-deploy"
BASE_SLIM=localhost/quixd-debian:bookworm-slim
BASE_SYSTEMD=localhost/quixd-debian:bookworm-systemd

deploy_log() { echo "$(basename "$0"): $*" >&2; }
deploy_die() { deploy_log "$*"; exit 1; }

# Installs the Debian packages named (only those missing), as scripts/setup.sh does.
deploy_apt_install() {
    local missing=() package sudo_cmd=""
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    deploy_log "installing ${missing[*]}"
    $sudo_cmd apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The Debian mirror of the machine's apt sources (deb822 or one-line format).
deploy_mirror() {
    local mirror
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
    [ -n "$mirror" ] || mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}')
    [ -n "$mirror" ] || return 1
    echo "$mirror"
}

# localhost/quixd-debian:bookworm-slim: debootstrap minbase, slimmed as debian:*-slim is (no
# docs, man pages or locales, and dpkg told to leave them out of later installs; no apt lists).
deploy_base_slim() {
    if podman image exists "$BASE_SLIM"; then return 0; fi
    command -v debootstrap >/dev/null || deploy_die "debootstrap is not installed"
    local mirror rootfs started=$SECONDS
    mirror=$(deploy_mirror) || deploy_die "no Debian mirror in /etc/apt/sources.list{,.d}: debootstrap needs one"
    rootfs="$DEPLOY_WORK/rootfs-bookworm"
    rm -rf "$rootfs" && mkdir -p "$DEPLOY_WORK"
    deploy_log "debootstrap --variant=minbase bookworm from $mirror (about 2 minutes, once)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$DEPLOY_WORK/debootstrap.log" 2>&1 ||
        deploy_die "debootstrap failed; see $DEPLOY_WORK/debootstrap.log: $(tail -n 3 "$DEPLOY_WORK/debootstrap.log")"
    # The host's bookworm sources (updates and security too) when it has them, else the mirror.
    if grep -qs "bookworm" /etc/apt/sources.list.d/debian.sources; then
        rm -f "$rootfs/etc/apt/sources.list"
        cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
    fi
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
    tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE_SLIM" >/dev/null ||
        deploy_die "podman import of the debootstrap rootfs failed"
    rm -rf "$rootfs"
    deploy_log "made $BASE_SLIM in $((SECONDS - started)) s"
}

# localhost/quixd-debian:bookworm-systemd: the slim base with systemd as PID 1, for the unit tests.
deploy_base_systemd() {
    # Made again when its Containerfile changed (the image carries the file's hash as a label).
    local recipe
    recipe=$(sha256sum "$DEPLOY_ROOT/deploy/test/systemd.Containerfile" | cut -c1-16)
    if podman image exists "$BASE_SYSTEMD" &&
        [ "$(podman image inspect --format '{{index .Labels "quixd.recipe"}}' "$BASE_SYSTEMD")" = "$recipe" ]; then
        return 0
    fi
    deploy_base_slim
    deploy_log "building $BASE_SYSTEMD (apt-get install systemd, once)"
    podman build --network host --pull=never --build-arg "BASE=$BASE_SLIM" --label "quixd.recipe=$recipe" -t "$BASE_SYSTEMD" \
        -f "$DEPLOY_ROOT/deploy/test/systemd.Containerfile" "$DEPLOY_ROOT/deploy/test" >"$DEPLOY_WORK/systemd-base.log" 2>&1 ||
        deploy_die "building $BASE_SYSTEMD failed; see $DEPLOY_WORK/systemd-base.log: $(tail -n 3 "$DEPLOY_WORK/systemd-base.log")"
}

# The quixd the image and the package ship: a release build with the Swift runtime linked in
# (--static-swift-stdlib), built here unless QUIXD_BINARY names one. Prints its path.
deploy_quixd_binary() {
    if [ -n "${QUIXD_BINARY:-}" ]; then
        [ -x "$QUIXD_BINARY" ] || deploy_die "QUIXD_BINARY=$QUIXD_BINARY is not an executable"
    else
        # FoundationNetworking, linked in statically, needs libcurl's development files.
        deploy_apt_install libcurl4-openssl-dev
        (cd "$DEPLOY_ROOT" && swift build -c release --static-swift-stdlib --product quixd >&2) ||
            deploy_die "swift build -c release --static-swift-stdlib --product quixd failed"
        QUIXD_BINARY="$(cd "$DEPLOY_ROOT" && swift build -c release --static-swift-stdlib --show-bin-path)/quixd"
    fi
    if grep -q "libswift" <<<"$(ldd "$QUIXD_BINARY")"; then
        deploy_die "$QUIXD_BINARY loads the Swift runtime from the toolchain; build it with --static-swift-stdlib"
    fi
    echo "$QUIXD_BINARY"
}

# swift-backtrace-static of the toolchain that built quixd (symbolicated crash reports).
deploy_backtracer() {
    local swift toolchain
    swift=$(command -v swift) || deploy_die "swift is not on PATH"
    toolchain=$(dirname "$(dirname "$(readlink -f "$swift")")")
    [ -x "$toolchain/libexec/swift/linux/swift-backtrace-static" ] || deploy_die "no swift-backtrace-static in $toolchain/libexec/swift/linux"
    echo "$toolchain/libexec/swift/linux/swift-backtrace-static"
}

# The version quixd reports (the image tag and the package version).
deploy_version() { "$1" --version | awk '{print $NF}'; }
