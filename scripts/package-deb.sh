#!/usr/bin/env bash
# Makes quixd_VERSION_ARCH.deb with dpkg-deb and prints its path as its last line (or fails,
# saying why); then runs lintian on it when lintian is installed (LINTIAN=0 skips that).
#
#   scripts/package-deb.sh                  # builds quixd (release, --static-swift-stdlib) first
#   QUIXD_BINARY=PATH scripts/package-deb.sh    # or packages that binary
#
# The package: /usr/bin/quixd, both units (ExecStart pointing at /usr/bin/quixd), the system
# user (sysusers.d, made in postinst), /etc/quixd/quixd.yaml as a conffile (0640 root:quixd
# by dpkg-statoverride) with an empty /etc/quixd/pipelines/, and the docs. Depends come from
# dpkg-shlibdeps on the binary, plus what the maintainer scripts use. packaging/deb/ has the
# files; the .deb goes to .build-deploy/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-deploy.sh

for tool in dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || deploy_die "$tool is not installed (apt-get install dpkg-dev)"
done
binary=$(deploy_quixd_binary)
version=$(deploy_version "$binary")
arch=$(dpkg --print-architecture)
name="quixd_${version}_${arch}"
root="$DEPLOY_WORK/deb/$name"
rm -rf "$root" && mkdir -p "$root/DEBIAN"
src=packaging/deb

# Files, with the modes Debian policy asks for (owner root: dpkg-deb --root-owner-group).
install -D -m 0755 "$binary" "$root/usr/bin/quixd"
# Stripped as policy 10.1 asks (and dh_strip does); the image keeps the symbols for its
# symbolicated crash reports (it ships swift-backtrace), the package relies on core dumps.
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/quixd"
install -D -m 0644 "$src/quixd.1" "$root/usr/share/man/man1/quixd.1"
gzip -9n "$root/usr/share/man/man1/quixd.1"
for unit in quixd.service quixd@.service; do
    install -d "$root/lib/systemd/system"
    sed 's|/usr/local/bin/quixd|/usr/bin/quixd|g' "systemd/$unit" >"$root/lib/systemd/system/$unit"
    chmod 0644 "$root/lib/systemd/system/$unit"
    grep -q '^ExecStart=/usr/bin/quixd ' "$root/lib/systemd/system/$unit" || deploy_die "$unit: ExecStart does not name /usr/bin/quixd"
done
install -D -m 0644 "$src/sysusers.conf" "$root/usr/lib/sysusers.d/quixd.conf"
install -D -m 0644 "$src/quixd.yaml" "$root/etc/quixd/quixd.yaml"
install -d -m 0755 "$root/etc/quixd/pipelines"
doc="$root/usr/share/doc/quixd"
install -D -m 0644 README.md "$doc/README.md"
install -m 0644 systemd/README.md "$doc/README.systemd.md"
install -m 0644 "$src/README.Debian" "$doc/README.Debian"
install -m 0644 "$src/copyright" "$doc/copyright"
install -d "$doc/docs" "$doc/examples"
install -m 0644 docs/*.md "$doc/docs/"
install -m 0644 pipelines/*.yaml "$doc/examples/"
# Debian policy 12.3: documentation over 4 kB compressed (the units point at README.md, which
# stays as it is, and so do the examples, which users copy).
find "$doc/docs" "$doc/README.systemd.md" -type f -size +4k -exec gzip -9n {} +
# A native package's changelog (policy 12.7).
cat >"$DEPLOY_WORK/changelog" <<EOF
quixd ($version) unstable; urgency=medium

  * Built from $(git rev-parse --short HEAD 2>/dev/null || echo "a source tree") of the quixd repository.

 -- quixd maintainers <maintainers@quixd.invalid>  $(date -R -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
EOF
gzip -9n -c "$DEPLOY_WORK/changelog" >"$doc/changelog.gz"
install -D -m 0644 "$src/lintian-overrides" "$root/usr/share/lintian/overrides/quixd"

# Depends: the shared libraries quixd loads (dpkg-shlibdeps reads the ELF NEEDED entries and
# the shlibs/symbols files of the packages that have them), plus what postinst runs: adduser
# where there is no systemd-sysusers (lintian wants it listed either way). Nothing else: the
# units need /bin/sh (Essential) and systemd itself.
shlibs_dir="$DEPLOY_WORK/shlibdeps"
rm -rf "$shlibs_dir" && mkdir -p "$shlibs_dir/debian"
printf 'Source: quixd\n\nPackage: quixd\nArchitecture: any\n' >"$shlibs_dir/debian/control"
shlibs=$(cd "$shlibs_dir" && dpkg-shlibdeps -O "$root/usr/bin/quixd" 2>"$DEPLOY_WORK/shlibdeps.err") ||
    deploy_die "dpkg-shlibdeps failed: $(cat "$DEPLOY_WORK/shlibdeps.err")"
depends="${shlibs#shlibs:Depends=}, adduser"

installed_kb=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: quixd
Version: $version
Architecture: $arch
Maintainer: quixd maintainers <maintainers@quixd.invalid>
Installed-Size: $installed_kb
Depends: $depends
Recommends: ca-certificates
Section: net
Priority: optional
Description: stream-processing daemon for Kafka, successor of Quix Streams 0.5
 quixd runs YAML pipelines of stages over Kafka topics: streams keyed by
 stream id, time-series data, events and stream metadata, wire-compatible
 with quixstreams 0.5. Stage state is kept in LMDB and checkpointed with the
 consumed offsets; replicas share the work through consumer groups.
 .
 This package holds quixd (the Swift runtime linked in), the systemd units
 quixd.service (every pipeline in one process) and quixd@.service (one
 process per pipeline file), and a config in /etc/quixd.
EOF
printf '/etc/quixd/quixd.yaml\n' >"$root/DEBIAN/conffiles"
install -m 0755 "$src/postinst" "$src/postrm" "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

deb="$DEPLOY_WORK/$name.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null || deploy_die "dpkg-deb --build failed"
deploy_log "made $deb ($(($(stat -c %s "$deb") / 1000000)) MB; Depends: $depends)"
if [ "${LINTIAN:-1}" != 0 ] && command -v lintian >/dev/null; then
    # Tags lintian still has are overridden in packaging/deb/lintian-overrides, each with its reason.
    lintian --fail-on warning --display-info "$deb" >&2 || deploy_die "lintian found problems in $deb"
fi
echo "$deb"
