package redistest

import "syscall"

// sysProcAttr makes the kernel kill redis-server when the test binary dies without running its
// cleanups (a panic, a -timeout, a SIGKILL), so no process outlives the tests. (The signal is
// tied to the thread that started the process; the Go runtime does not end its threads unless
// a goroutine exits while locked to one, which this package never does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
