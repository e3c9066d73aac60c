// Package buildinfo tells which build of the server is running and since when.
package buildinfo

import (
	"runtime/debug"
	"time"
)

// Version is the module version the binary was built from, or "devel" for a local build. It can be
// set at link time with -ldflags "-X github.com/junctioncdp/junction/internal/buildinfo.Version=v1.2.3".
var Version = moduleVersion()

// StartedAt is when this process started.
var StartedAt = time.Now().UTC()

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
