package integration

import (
	"strings"
	"testing"
)

// TestProcsFollowHosts: the command runs on one P when it works on one
// host (cli.LimitProcs), says so under --debug, and keeps a GOMAXPROCS
// set in the environment.
func TestProcsFollowHosts(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	for _, tc := range []struct {
		name, env, want string
	}{
		// Empty is unset, for the runtime and for LimitProcs alike,
		// whatever the test's own environment says.
		{"one host", "GOMAXPROCS=", "msg=procs hosts=1 concurrency=32 GOMAXPROCS=1\n"},
		{"GOMAXPROCS set", "GOMAXPROCS=3", "msg=procs hosts=1 concurrency=32 GOMAXPROCS=3\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"BITSREMOTE_PASSWORD=" + s.password, tc.env}
			res := run(t, runSpec{args: append([]string{"list", "--debug", "-o", "json"}, s.conn(0)...), env: env, secrets: s.secrets()})
			wantCode(t, res, 0)
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("--debug does not say %q:\n%s", strings.TrimSpace(tc.want), res.Stderr)
			}
		})
	}
}
