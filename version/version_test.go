package version_test

import (
	"runtime/debug"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tidemark/tidemark/version"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.1.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "c62fc3ccb61c8fdcb6ae45be432747d2e10d23b8"},
		{Key: "vcs.time", Value: "2026-12-07T11:51:21Z"},
		{Key: "vcs.modified", Value: "false"},
	}}
	i := version.FromBuildInfo(bi)
	require.Equal(t, "v0.1.0", i.Version)
	require.Equal(t, time.Date(2026, 12, 7, 11, 51, 21, 0, time.UTC), i.Time)
	require.Equal(t, "v0.1.0 (commit c62fc3ccb61c8fdcb6ae45be432747d2e10d23b8, committed 2026-12-07T11:51:21Z, go1.26.8)", i.String())

	none := version.FromBuildInfo(&debug.BuildInfo{GoVersion: "go1.26.8"})
	require.Equal(t, "(devel) (commit unknown, committed unknown, go1.26.8)", none.String())
}
