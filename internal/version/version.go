// Package version tells which build of the binaries is running: the
// version a release stamps in with -ldflags, else the one Go records from
// the module and the VCS checkout.
package version

import (
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// stamped and stampedRevision are set by releases and images:
//
//	go build -ldflags "-X github.com/smartrent-bridge/bridge/internal/version.stamped=v1.2.3 \
//	  -X github.com/smartrent-bridge/bridge/internal/version.stampedRevision=<commit>"
//
// The revision is stamped too because Go records the VCS commit only when
// it builds inside a git checkout with -buildvcs on (not in a Docker
// build context without .git, nor with GOFLAGS=-buildvcs=false). They are
// link-time constants, never written at run time.
var stamped, stampedRevision string

// Info is what identifies a build.
type Info struct {
	Version   string // v1.2.3, or "devel" for a build from a work tree
	Revision  string // VCS commit, "" when unknown
	Modified  bool   // built from a work tree with uncommitted changes
	GoVersion string
}

// Get returns the running binary's build information.
func Get() Info {
	info := Info{Version: stamped, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version // go install module@version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if stampedRevision != "" {
		info.Revision = stampedRevision
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}

// String is one line for --version: "bridge v1.2.3 (commit 0123abcd, go1.26.8)".
func (i Info) String() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		rev = "unknown"
	}
	if i.Modified {
		rev += "+modified"
	}
	return fmt.Sprintf("%s (commit %s, %s)", i.Version, rev, i.GoVersion)
}

// Collector is the smartrent_build_info gauge: always 1, labelled with the
// build, so dashboards can show which version runs where and join it to
// other series.
func Collector(binary string) prometheus.Collector {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "smartrent_build_info",
		Help: "Build of the running binary (always 1).",
		ConstLabels: prometheus.Labels{
			"binary": binary, "version": i.Version, "revision": i.Revision, "goversion": i.GoVersion,
		},
	})
	g.Set(1)
	return g
}

var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$`)

// SemVer is the version without its "v", as NATS micro services want it;
// a build that has none (a work tree) is "0.0.0-devel".
func (i Info) SemVer() string {
	v := strings.TrimPrefix(i.Version, "v")
	if !semVer.MatchString(v) {
		return "0.0.0-devel"
	}
	return v
}
