package azurite

import "syscall"

// sysProcAttr makes the kernel kill the emulator when the test process dies,
// even if TestMain never calls Stop (a panic, a timeout, a kill).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
