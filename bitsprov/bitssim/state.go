package bitssim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// stateFile is the name of the job queue file in Config.StateDir.
const stateFile = "bits-queue.json"

// saveInterval is how often a provider with a StateDir writes its queue
// when it has changed. A crash loses at most this much progress, which a
// resumed download fetches again: the file on disk is never behind what
// the queue says was transferred.
const saveInterval = 50 * time.Millisecond

// stateVersion is written into the queue file; Open refuses other
// versions rather than guess.
const stateVersion = 1

// savedQueue is the job queue as it is kept on disk. The BITS service
// keeps its queue (jobs, files, progress, credentials) across service
// and machine restarts; this is the simulator's equivalent.
type savedQueue struct {
	Version int        `json:"version"`
	Seq     uint64     `json:"seq"`
	Jobs    []savedJob `json:"jobs"`
}

type savedJob struct {
	ID                string      `json:"id"`
	Seq               uint64      `json:"seq"`
	DisplayName       string      `json:"displayName"`
	Description       string      `json:"description"`
	Type              uint16      `json:"type"`
	Priority          uint16      `json:"priority"`
	State             uint16      `json:"state"`
	Account           uint16      `json:"account"`
	Files             []savedFile `json:"files"`
	Created           time.Time   `json:"created"`
	Modified          time.Time   `json:"modified"`
	Completed         time.Time   `json:"completed"`
	RetryDelay        uint32      `json:"retryDelay"`
	NoProgressTimeout uint32      `json:"noProgressTimeout"`
	TransientErrors   uint32      `json:"transientErrors"`
	Error             *savedError `json:"error,omitempty"`
	ProgressAt        time.Time   `json:"progressAt"`
	Session           string      `json:"session,omitempty"`
	// Creds are the job's credentials, as BITS keeps them with the job
	// (encrypted there; the file here is readable by its owner only).
	Creds      []savedCred `json:"creds,omitempty"`
	ProxyUsage uint16      `json:"proxyUsage"`
	ProxyList  string      `json:"proxyList,omitempty"`
	BypassList string      `json:"bypassList,omitempty"`
	CertStore  string      `json:"certStore,omitempty"`
}

type savedFile struct {
	RemoteURL   string `json:"remoteUrl"`
	LocalFile   string `json:"localFile"`
	Total       uint64 `json:"total"`
	Transferred uint64 `json:"transferred"`
	Completed   bool   `json:"completed"`
	Path        string `json:"path,omitempty"`
	Tmp         string `json:"tmp,omitempty"`
}

type savedError struct {
	Context   uint32 `json:"context"`
	Code      uint32 `json:"code"`
	Transient bool   `json:"transient,omitempty"`
}

type savedCred struct {
	Target   uint16 `json:"target"`
	Scheme   uint16 `json:"scheme"`
	User     string `json:"user"`
	Password string `json:"password"`
}

// Open returns a provider like New and, when cfg.StateDir is set, loads
// the job queue kept there and keeps it up to date from then on, so that
// a provider started again on the same directory has the same jobs, as
// the BITS service after a restart: jobs that were transferring are queued
// again and resume their downloads where the files on disk stop (a Range
// request), jobs in TransientError retry after their delay, the rest stay
// as they were.
func Open(cfg Config) (*Provider, error) {
	p := New(cfg)
	if cfg.StateDir == "" {
		return p, nil
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("bitssim: state directory: %w", err)
	}
	p.statePath = filepath.Join(cfg.StateDir, stateFile)
	if err := p.load(); err != nil {
		_ = p.Close()
		return nil, err
	}
	p.wg.Add(1)
	go p.saveLoop()
	return p, nil
}

// load reads the queue file, if there is one, and restarts its jobs.
func (p *Provider) load() error {
	b, err := os.ReadFile(p.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bitssim: read job queue: %w", err)
	}
	var q savedQueue
	if err := json.Unmarshal(b, &q); err != nil {
		return fmt.Errorf("bitssim: job queue %s: %w", p.statePath, err)
	}
	if q.Version != stateVersion {
		return fmt.Errorf("bitssim: job queue %s: version %d, want %d", p.statePath, q.Version, stateVersion)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq = q.Seq
	for _, sj := range q.Jobs {
		j := sj.job()
		p.jobs[j.id] = j
		switch j.state {
		case bitsprov.StateConnecting, bitsprov.StateTransferring:
			// The transfer died with the service; BITS picks the job
			// up again when it starts.
			j.state = bitsprov.StateQueued
		case bitsprov.StateTransientError:
			p.retryLocked(j)
		}
	}
	p.lastSaved = b
	p.scheduleLocked()
	return nil
}

// saveLoop writes the queue whenever it has changed, until Close.
func (p *Provider) saveLoop() {
	defer p.wg.Done()
	tick := time.NewTicker(saveInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			_ = p.save()
		case <-p.ctx.Done():
			return
		}
	}
}

// save writes the queue if it differs from what was last written. The
// write is atomic (a temporary file renamed over the old one), so a crash
// leaves either the old queue or the new one.
func (p *Provider) save() error {
	p.mu.Lock()
	q := savedQueue{Version: stateVersion, Seq: p.seq}
	for _, j := range p.jobs {
		q.Jobs = append(q.Jobs, j.saved())
	}
	p.mu.Unlock()
	// Stable order, so an unchanged queue is byte-identical.
	slices.SortFunc(q.Jobs, func(a, b savedJob) int { return cmp.Compare(a.Seq, b.Seq) })
	b, err := json.MarshalIndent(q, "", "  ")
	if err != nil {
		return fmt.Errorf("bitssim: save job queue: %w", err)
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	if bytes.Equal(b, p.lastSaved) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.statePath), stateFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("bitssim: save job queue: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("bitssim: save job queue: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("bitssim: save job queue: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.statePath); err != nil {
		return fmt.Errorf("bitssim: save job queue: %w", err)
	}
	p.lastSaved = b
	return nil
}

// saved copies the job for the queue file; the caller holds the lock.
func (j *job) saved() savedJob {
	s := savedJob{
		ID: j.id, Seq: j.seq, DisplayName: j.displayName, Description: j.description,
		Type: uint16(j.typ), Priority: uint16(j.priority), State: uint16(j.state), Account: uint16(j.account),
		Created: j.created, Modified: j.modified, Completed: j.completed,
		RetryDelay: j.retryDelay, NoProgressTimeout: j.noProgressTimeout, TransientErrors: j.transientErrors,
		ProgressAt: j.progressAt, Session: j.session,
		ProxyUsage: uint16(j.proxyUsage), ProxyList: j.proxyList, BypassList: j.bypassList, CertStore: j.certStore,
	}
	for _, f := range j.files {
		s.Files = append(s.Files, savedFile{RemoteURL: f.remoteURL, LocalFile: f.localFile, Total: f.total,
			Transferred: f.transferred, Completed: f.completed, Path: f.path, Tmp: f.tmp})
	}
	if j.err != nil {
		s.Error = &savedError{Context: uint32(j.err.context), Code: j.err.code, Transient: j.err.transient}
	}
	for k, v := range j.creds {
		s.Creds = append(s.Creds, savedCred{Target: k[0], Scheme: k[1], User: v[0], Password: v[1]})
	}
	slices.SortFunc(s.Creds, func(a, b savedCred) int {
		return cmp.Or(cmp.Compare(a.Target, b.Target), cmp.Compare(a.Scheme, b.Scheme))
	})
	return s
}

// job rebuilds a job from the queue file.
func (s savedJob) job() *job {
	j := &job{
		id: s.ID, seq: s.Seq, displayName: s.DisplayName, description: s.Description,
		typ: bitsprov.JobType(s.Type), priority: bitsprov.Priority(s.Priority), state: bitsprov.State(s.State),
		account: bitsprov.ServiceAccount(s.Account),
		created: s.Created, modified: s.Modified, completed: s.Completed,
		retryDelay: s.RetryDelay, noProgressTimeout: s.NoProgressTimeout, transientErrors: s.TransientErrors,
		progressAt: s.ProgressAt, session: s.Session,
		creds:      map[[2]uint16][2]string{},
		proxyUsage: bitsprov.ProxyUsage(s.ProxyUsage), proxyList: s.ProxyList, bypassList: s.BypassList, certStore: s.CertStore,
	}
	for _, f := range s.Files {
		j.files = append(j.files, &file{remoteURL: f.RemoteURL, localFile: f.LocalFile, total: f.Total,
			transferred: f.Transferred, completed: f.Completed, path: f.Path, tmp: f.Tmp})
	}
	if s.Error != nil {
		j.err = &jobError{context: bitsprov.ErrorContext(s.Error.Context), code: s.Error.Code, transient: s.Error.Transient}
	}
	for _, c := range s.Creds {
		j.creds[[2]uint16{c.Target, c.Scheme}] = [2]string{c.User, c.Password}
	}
	return j
}
