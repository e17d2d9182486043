//go:build unix

package cli

import "syscall"

// raiseOpenFiles lifts the soft limit on open files to the hard limit, for
// sim --hosts with hundreds of hosts.
func raiseOpenFiles() {
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
}
