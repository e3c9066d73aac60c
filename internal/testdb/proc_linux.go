package testdb

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the PostgreSQL run end when the run that started it does, as when go test
// kills a binary that outlives its timeout.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
