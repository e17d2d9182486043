package cli

import (
	"testing"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/internal/fleet"
	"github.com/google/go-cmp/cmp"
)

// TestJobResultRecordDone: a job finished in an earlier run is printed in
// the state the ledger last saw (Acknowledged and Cancelled as such), not
// a zero state that would read Queued, with its error.
func TestJobResultRecordDone(t *testing.T) {
	const id = "{5A1F0000-0000-4000-8000-000000000001}"
	for _, tc := range []struct {
		name    string
		r       fleet.JobResult
		state   bitsprov.State
		wantErr string
	}{
		{"gone", fleet.JobResult{Host: "h1", JobID: id, Step: fleet.StepGone, Done: true,
			Job: &bitsprov.Job{JobID: id, DisplayName: "d", State: bitsprov.StateTransferring}}, bitsprov.StateTransferring, "gone in an earlier run"},
		{"acknowledged", fleet.JobResult{Host: "h1", JobID: id, Step: fleet.StepAcknowledged, Done: true,
			Job: &bitsprov.Job{JobID: id, State: bitsprov.StateTransferred}}, bitsprov.StateAcknowledged, ""},
		{"nothing recorded", fleet.JobResult{Host: "h1", JobID: id, Step: fleet.StepCancelled, Done: true}, bitsprov.StateCancelled, "cancelled in an earlier run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := jobResultRecord(tc.r, 0)
			if got := errText(err); got != tc.wantErr {
				t.Errorf("error %q, want %q", got, tc.wantErr)
			}
			if rec.Job == nil || rec.Job.JobID != id || rec.Job.State != tc.state || rec.Outcome == nil || rec.Outcome.Result != "AlreadyDone" {
				t.Fatalf("record %+v (job %+v), want job %s in state %s, AlreadyDone", rec, rec.Job, id, tc.state)
			}
			if tc.r.Job != nil && rec.Job == tc.r.Job {
				t.Error("the record shares the result's Job")
			}
			if tc.r.Job != nil && tc.r.Step == fleet.StepGone {
				if d := cmp.Diff(tc.r.Job, rec.Job); d != "" {
					t.Errorf("job (-ledger +record):\n%s", d)
				}
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
