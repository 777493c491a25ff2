#!/usr/bin/env bash
# release.sh VERSION OUT: the release artefacts in OUT (make release).
#   smartrent-bridge-<version>-<os>-<arch>.tar.gz   the binaries of a platform:
#     linux/amd64, linux/arm64: bridge, webhook-ingress, smartrentctl
#     darwin/amd64, darwin/arm64: smartrentctl (an operator's laptop)
#   <binary>-<version>-<os>-<arch>.cdx.json          a CycloneDX SBOM per binary,
#     from the module versions Go recorded in it (cyclonedx-gomod bin)
#   SHA256SUMS                                       of every file above
# Each binary carries the version and the commit (-X …version.stamped,
# …stampedRevision; "+modified" when built from uncommitted changes). Archives are reproducible: sorted entries,
# owner 0, mtime of the commit. RELEASE_PLATFORMS overrides the list.
set -euo pipefail
version=${1:?version}
out=${2:?output directory}
go=${GO:-go}
cyclonedx=github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@v1.10.0
platforms=${RELEASE_PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
epoch=$(git log -1 --format=%ct 2>/dev/null || date +%s)
revision=$(git rev-parse HEAD 2>/dev/null || true)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  revision="$revision+modified" # a release from uncommitted changes says so
fi
ldflags="-s -w -X github.com/smartrent-bridge/bridge/internal/version.stamped=$version -X github.com/smartrent-bridge/bridge/internal/version.stampedRevision=$revision"

rm -rf "$out" && mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for p in $platforms; do
  os=${p%/*} arch=${p#*/}
  cmds="bridge webhook-ingress smartrentctl"
  [ "$os" = linux ] || cmds="smartrentctl"
  name=smartrent-bridge-$version-$os-$arch
  mkdir -p "$stage/$name"
  for c in $cmds; do
    echo "building $os/$arch $c"
    CGO_ENABLED=0 GOOS=$os GOARCH=$arch $go build -trimpath -ldflags "$ldflags" -o "$stage/$name/$c" "./cmd/$c"
    $go run "$cyclonedx" bin -json -output "$out/$c-$version-$os-$arch.cdx.json" -version "$version" "$stage/$name/$c"
  done
  cp README.md CHANGELOG.md "$stage/$name/"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$stage" -czf "$out/$name.tar.gz" "$name"
done
(cd "$out" && sha256sum -- *.tar.gz *.cdx.json > SHA256SUMS && cat SHA256SUMS)
