#!/bin/sh
# release.sh: the release artefacts in $DIST (default dist/), for
# linux/amd64 and linux/arm64 (override with ARCHES="amd64"):
#
#   edgecert_<version>_linux_<arch>   static binary (CGO_ENABLED=0, -trimpath,
#                                     GOOS/GOARCH pinned), version-stamped
#   edgecert_<debversion>_<arch>.deb  Debian package (packaging/nfpm.yaml):
#                                     binary, unit, sysusers file, env example
#   SHA256SUMS                        sha256sum -c format, of all of the above
#   edgecert_<arch>.deb               symlink to the package, the default
#                                     package of packer/edgecert.pkr.hcl
#
# The version comes from the newest v* tag (git describe): v1.2.3 on the
# tagged commit, v1.2.3-4-gabc1234 four commits later, -dirty with
# uncommitted changes, v0.0.0-N-gHASH without any tag; VERSION=... overrides.
# The Debian version is the same without the "v", with what follows the
# release number after a "+" (1.2.3, 1.2.3+4.gabc1234, 0.0.0+12.gabc1234.dirty),
# so later builds sort after their tag, and a pre-release after a "~"
# (v1.3.0-rc.1 -> 1.3.0~rc.1, before 1.3.0).
#
# Each binary is checked before it is packaged: its Go build settings must
# say GOOS=linux, the wanted GOARCH and CGO_ENABLED=0. nfpm is run at a
# pinned version through the Go module proxy (go run ...@$NFPM_VERSION).
# Needs Go and git; runs from anywhere.
set -eu

NFPM_VERSION=v2.48.0
cd "$(dirname "$0")/.."
repo=$(pwd)
dist=${DIST:-dist}
case "$dist" in /*) ;; *) dist=$repo/$dist ;; esac
arches=${ARCHES:-amd64 arm64}

say() { printf 'release: %s\n' "$*" >&2; }

version=${VERSION:-$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null ||
	printf 'v0.0.0-%s-g%s%s' "$(git rev-list --count HEAD)" "$(git rev-parse --short HEAD)" \
		"$(git diff --quiet HEAD 2>/dev/null || echo -dirty)")}
case "$version" in
v[0-9]*) ;;
*)
	say "version $version does not start with v and a digit"
	exit 1
	;;
esac
# v1.2.3[-N-gHASH][-dirty] -> 1.2.3[+N.gHASH][.dirty]
debversion=$(printf '%s\n' "${version#v}" | sed -E \
	-e 's/^([0-9][0-9.]*)-([0-9]+)-(g[0-9a-f]+)/\1+\2.\3/' \
	-e 's/^([0-9][0-9.]*)-dirty$/\1+dirty/' \
	-e 's/-dirty$/.dirty/' \
	-e 's/^([0-9][0-9.]*)-([a-z])/\1~\2/')
say "version $version (Debian $debversion) for $arches into $dist/"

rm -rf "$dist"
mkdir -p "$dist"
for arch in $arches; do
	bin=$dist/edgecert_${version}_linux_$arch
	say "go build linux/$arch -> $bin"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
		-ldflags "-s -w -X github.com/edgecert/edgecert/daemon.Version=$version" -o "$bin" .
	settings=$(go version -m "$bin")
	for want in "GOOS=linux" "GOARCH=$arch" "CGO_ENABLED=0"; do
		if ! printf '%s\n' "$settings" | grep -Eq "^[[:space:]]+build[[:space:]]+$want\$"; then
			say "$bin: build settings lack $want"
			exit 1
		fi
	done
	say "package $dist/edgecert_${debversion}_$arch.deb"
	stage=$(mktemp -d)
	cp "$bin" "$stage/edgecert"
	cp -R systemd packaging LICENSE "$stage/"
	(cd "$stage" && DEB_ARCH=$arch DEB_VERSION=$debversion \
		go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" package \
		--config packaging/nfpm.yaml --packager deb --target "$dist/") >&2
	rm -rf "$stage"
	[ -f "$dist/edgecert_${debversion}_$arch.deb" ] || {
		say "nfpm wrote no $dist/edgecert_${debversion}_$arch.deb"
		exit 1
	}
done
(cd "$dist" && sha256sum -- edgecert_* >SHA256SUMS)
# Stable names for the Packer template's default (-var package=...).
for arch in $arches; do
	ln -sfn "edgecert_${debversion}_$arch.deb" "$dist/edgecert_$arch.deb"
done
say "$(wc -l <"$dist/SHA256SUMS") artefacts, checksums in $dist/SHA256SUMS"
