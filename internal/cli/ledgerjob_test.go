package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/internal/fleet"
)

// TestLedgerJobPriority: wait --run reports a job it does not poll with
// the priority its request gave it (BITS's default, Normal, when the
// request set none), as transfer --resume does, not Foreground for all.
func TestLedgerJobPriority(t *testing.T) {
	const id = "{5A1F0000-0000-4000-8000-000000000006}"
	for _, tc := range []struct {
		name, priority string
		want           bitsprov.Priority
	}{
		{"low", "Low", bitsprov.PriorityLow},
		{"foreground", "Foreground", bitsprov.PriorityForeground},
		{"unset", "", bitsprov.PriorityNormal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &fleet.Entry{JobID: id, Step: fleet.StepCancelled, State: "Transferring",
				Request: fleet.Request{DisplayName: "d", Priority: tc.priority, Files: []fleet.FileRecord{{RemoteURL: "http://f/a", LocalFile: `C:\a`}}}}
			want := &bitsprov.Job{JobID: id, DisplayName: "d", State: bitsprov.StateCancelled, Priority: tc.want, FilesTotal: 1,
				Files: []bitsprov.File{{RemoteURL: "http://f/a", LocalFile: `C:\a`}}}
			if d := cmp.Diff(want, ledgerJob(e)); d != "" {
				t.Errorf("ledgerJob (-want +got):\n%s", d)
			}
		})
	}
}
