//go:build !linux

package azurite

import "syscall"

// sysProcAttr has no parent-death signal outside Linux; Main's Stop is the
// only cleanup there.
func sysProcAttr() *syscall.SysProcAttr { return nil }
