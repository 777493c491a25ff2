#!/usr/bin/env bash
# govulncheck on the product's code, failing on any vulnerability it
# reaches. vuln.go.dev is out of reach from the machines we build on, so the
# database is the Go team's own vulndb repository as the Go module proxy
# serves it (golang.org/x/vulndb, pinned), indexed here with its indexdb
# command into the v1 format govulncheck reads (-db file://). Both tools
# come from the proxy at pinned versions; nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VULN=${VULN_VERSION:-v1.9.0}
VULNDB=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
db=${TMPDIR:-/tmp}/smartrent-vulndb-$VULNDB
if [ ! -f "$db/index/db.json" ]; then
  echo "vulncheck: indexing golang.org/x/vulndb@$VULNDB into $db (once per machine, about a minute)"
  # Outside the module: neither go.mod nor go.sum of the project changes.
  src=$(cd "${TMPDIR:-/tmp}" && go mod download -json "golang.org/x/vulndb@$VULNDB" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$db.tmp"
  (cd "${TMPDIR:-/tmp}" && go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB" -vulns "$src/data/osv" -out "$db.tmp")
  mv "$db.tmp" "$db"
fi
echo "vulncheck: $(go version), database golang.org/x/vulndb@$VULNDB"
go run "golang.org/x/vuln/cmd/govulncheck@$VULN" -db "file://$db" ./...
