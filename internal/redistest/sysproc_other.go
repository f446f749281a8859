//go:build !linux

package redistest

import "syscall"

// sysProcAttr: without Linux's Pdeathsig, processes are stopped only by the test cleanups.
func sysProcAttr() *syscall.SysProcAttr { return nil }
