// Package release checks what `make release` (scripts/release.sh)
// produces: an archive per OS and architecture, a CycloneDX SBOM per
// binary, checksums, and binaries that say their version and commit. It
// has no code of its own.
package release
