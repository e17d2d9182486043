package bitsprov

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bitsremote/bitsremote/wsman"
)

// progressProperties are the BitsClientJob properties a poll of many jobs
// needs: what the poller (Wait) decides on while a job is in progress
// (State), what progress lines and the fleet's board show (bytes and
// files, done and total), and what tells a job that moved (the transient
// error count, the modification time). Why a list at all: a fleet poll
// reads every job on every host each cycle, and the whole job (Files
// with their URLs and paths, names, owner, times) is some 1.6 KB of XML
// per job that must be sealed, sent, unsealed and parsed, for a handful
// of numbers; these are about a tenth of it. Keep PartialJob.Apply in
// step with this list.
var progressProperties = [...]string{
	"JobId", "State", "BytesTotal", "BytesTransferred", "FilesTotal",
	"FilesTransferred", "TransientErrorCount", "JobLastModificationTime",
}

// progressQuery selects progressProperties of every job, as an admin
// would write Get-CimInstance -Query "SELECT JobId, State, … FROM
// BitsClientJob". WinRM answers it with one w:XmlFragment per job
// holding just those properties.
var progressQuery = "SELECT " + strings.Join(progressProperties[:], ", ") + " FROM BitsClientJob"

// namespaceURI is root\microsoft\bits with the /* a WQL enumeration
// needs: the class is named by the query, not the URI.
const namespaceURI = wsman.ResourceWMI + "/root/microsoft/bits/*"

// ProgressProperties returns the BitsClientJob properties
// EnumerateProgress reads, in the query's order.
func ProgressProperties() []string { return append([]string(nil), progressProperties[:]...) }

// PartialJob is a job as EnumerateProgress reads it: only the fields of
// ProgressProperties are set (JobID, State, BytesTotal,
// BytesTransferred, FilesTotal, FilesTransferred, TransientErrorCount,
// Modified); every other field of Job is zero because it was not read,
// not because the job has it so. A partial job may show progress; before
// acting on a job, or reporting it as a result, read it whole
// (Client.Job), or lay the partial one over a whole one read earlier
// (Apply).
type PartialJob struct {
	// Job holds the fields read; the others are zero.
	Job Job
}

// Pending reports whether the job is in a state a poller only watches
// (Queued, Connecting, Transferring, Suspended: Wait keeps polling
// them): the only states in which a partial job may answer a poll. In
// any other state the poller acts or stops, and needs the whole job.
func (p *PartialJob) Pending() bool {
	switch p.Job.State {
	case StateQueued, StateConnecting, StateTransferring, StateSuspended:
		return true
	}
	return false
}

// Apply returns a copy of full, a whole job read earlier, with the fields
// EnumerateProgress reads replaced by p's (newer) values. Everything
// else, Files included, is as full had it.
func (p *PartialJob) Apply(full *Job) *Job {
	j := *full
	j.JobID = p.Job.JobID
	j.State = p.Job.State
	j.BytesTotal = nil
	if p.Job.BytesTotal != nil {
		n := *p.Job.BytesTotal
		j.BytesTotal = &n
	}
	j.BytesTransferred = p.Job.BytesTransferred
	j.FilesTotal = p.Job.FilesTotal
	j.FilesTransferred = p.Job.FilesTransferred
	j.TransientErrorCount = p.Job.TransientErrorCount
	j.Modified = p.Job.Modified
	return &j
}

// EnumerateProgress reads the progress of every job in the host's queue
// with one WQL enumeration that asks only for ProgressProperties (see
// progressProperties for why), in queue order. The jobs are partial (see
// PartialJob). Pulls that fail midway start the listing over, as for
// Jobs.
//
// A host whose WMI refuses the query (n:CannotProcessFilter,
// n:FilteringNotSupported or an unknown dialect) is listed whole
// instead, so that polling it works as before, only slower; a host
// without the provider then answers with the fault that says so.
func (c *Client) EnumerateProgress(ctx context.Context) ([]*PartialJob, error) {
	if c.WSMan == nil {
		return nil, errors.New("bitsprov: Enumerate: Client has no WSMan connection")
	}
	var jobs []*PartialJob
	keep := func(j *Job, err error) error {
		if err != nil {
			return fmt.Errorf("%s: Enumerate: %w", c.host(), err)
		}
		jobs = append(jobs, &PartialJob{Job: *j})
		return nil
	}
	opts := listOptions
	opts.WQL = progressQuery
	err := c.listOpts(ctx, namespaceURI, "Enumerate", opts, func(in *wsman.Instance) error {
		return keep(JobFromInstance(in))
	}, func(o wsman.ObjectView) error {
		return keep(JobFromView(o))
	}, func() { jobs = nil })
	var f *wsman.Fault
	if errors.As(err, &f) && f.Operation == "Enumerate" {
		switch f.Subcode {
		case "CannotProcessFilter", "FilteringNotSupported", "FilterDialectRequestedUnavailable":
			all, err := c.Jobs(ctx, JobFilter{})
			if err != nil {
				return nil, err
			}
			jobs = make([]*PartialJob, len(all))
			for i, j := range all {
				jobs[i] = &PartialJob{Job: *j}
			}
			return jobs, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return jobs, nil
}
