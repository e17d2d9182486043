package integration

import (
	"strings"
	"testing"
	"time"
)

// TestWaitTimeoutSilentHost: "wait --timeout 1s" on a host that takes
// requests and never answers ends at its timeout (exit 4, the host named
// unreachable), not when a read gives up on its own: 60 s per attempt,
// four attempts.
func TestWaitTimeoutSilentHost(t *testing.T) {
	t.Parallel()
	addr := silentListener(t)
	const id = "{5A1F0000-0000-4000-8000-000000000002}"
	res := run(t, runSpec{
		args:    []string{"wait", id, "--timeout", "1s", "-H", addr, "--auth", "basic", "-u", "admin"},
		env:     []string{"BITSREMOTE_PASSWORD=Silent-Host-Pw-1"},
		secrets: []string{"Silent-Host-Pw-1"},
		timeout: 20 * time.Second,
	})
	wantCode(t, res, 4)
	if !strings.Contains(res.Stderr, "unreachable") {
		t.Errorf("stderr does not say the host was unreachable:\n%s", res)
	}
}
