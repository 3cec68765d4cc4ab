// Package version is what the go command stamped into the running binary:
// the module version (a tag, or a pseudo-version of the commit), the commit,
// the commit's time and whether the tree had changes not committed. A
// binary carries no wall-clock build time, so that two builds of one commit
// are the same bytes; the commit's time stands for it.
package version

import (
	"fmt"
	"runtime/debug"
	"time"
)

// Info is one binary's version.
type Info struct {
	Version  string    // the module version, or "(devel)" when the go command stamped none
	Revision string    // the commit, or "unknown"
	Time     time.Time // the commit's time; zero when unknown
	Modified bool      // built from a tree with changes not committed
	Go       string    // the Go version it was built with
}

// Read is the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(devel)", Revision: "unknown"}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo is the Info of bi.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	i := Info{Version: bi.Main.Version, Revision: "unknown", Go: bi.GoVersion}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	return i
}

// String is the line --version prints after the command's name.
func (i Info) String() string {
	when := "unknown"
	if !i.Time.IsZero() {
		when = i.Time.UTC().Format(time.RFC3339)
	}
	dirty := ""
	if i.Modified {
		dirty = ", modified"
	}
	return fmt.Sprintf("%s (commit %s%s, committed %s, %s)", i.Version, i.Revision, dirty, when, i.Go)
}
