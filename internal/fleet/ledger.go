package fleet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/bitsremote/bitsremote/wsman/transport"
)

// EnvLedger overrides the ledger's path (as --ledger does).
const EnvLedger = "BITSREMOTE_LEDGER"

// ErrLedgerBusy is returned when another bitsremote holds the ledger.
var ErrLedgerBusy = errors.New("the ledger is in use by another bitsremote process")

// ErrNoRun is returned by BeginRun with resume when no unfinished run of
// the same request exists.
var ErrNoRun = errors.New("no interrupted run of this request in the ledger")

// Step is where a job stands in the ledger. The order matters: a job only
// moves forward.
type Step string

// Steps of a job. Intent is written before CreateJob is sent, Created
// right after it returns, so a job is never created without a trace.
const (
	// StepIntent: CreateJob is about to be (or was) sent; the JobId is
	// not known. On resume the job is looked for by its marker.
	StepIntent Step = "intent"
	// StepCreated: the job exists (suspended); setup may be unfinished.
	StepCreated Step = "created"
	// StepResumed: set up and resumed (or left suspended on request);
	// being waited for.
	StepResumed Step = "resumed"
	// StepCompleting: Complete is about to be (or was) sent.
	StepCompleting Step = "completing"
	// StepCancelling: Cancel is about to be (or was) sent.
	StepCancelling Step = "cancelling"
	// StepAcknowledged: completed; final.
	StepAcknowledged Step = "acknowledged"
	// StepCancelled: cancelled by us; final.
	StepCancelled Step = "cancelled"
	// StepGone: the job left the queue without us (someone else
	// completed or cancelled it); final.
	StepGone Step = "gone"
	// StepFailed: the job could not be created or set up and does not
	// exist; final.
	StepFailed Step = "failed"
	// StepLeft: the wait ended with the job left on the host (timed out,
	// --async, or a policy that leaves failed jobs); a resume waits
	// for it again.
	StepLeft Step = "left"
)

// Final reports whether the ledger will not touch the job again.
func (s Step) Final() bool {
	switch s {
	case StepAcknowledged, StepCancelled, StepGone, StepFailed:
		return true
	}
	return false
}

// FileRecord is one file of a job's request.
type FileRecord struct {
	RemoteURL string `json:"remoteUrl"`
	LocalFile string `json:"localFile"`
}

// Request is what the job was asked to do, without any secret.
type Request struct {
	DisplayName string       `json:"displayName"`
	Type        string       `json:"type"`
	Priority    string       `json:"priority,omitempty"`
	Files       []FileRecord `json:"files"`
}

// Entry is one job in the ledger.
type Entry struct {
	RunID string `json:"runId"`
	Host  string `json:"host"`
	// Index is the job's position in the run's list of jobs (0-based),
	// the same on every host; Row is its CSV row (0 for transfer).
	Index int `json:"index"`
	Row   int `json:"row,omitempty"`
	// Marker is put in the job's Description so that the job can be
	// found when the create's reply was lost. Every entry a run records
	// has one; a job with a marker and a JobId was seen by its run (see
	// seenByRun).
	Marker  string  `json:"marker"`
	JobID   string  `json:"jobId,omitempty"`
	Step    Step    `json:"step"`
	State   string  `json:"state,omitempty"` // last BITS state seen
	Request Request `json:"request"`
	Error   string  `json:"error,omitempty"`
	// Endpoint is how the run reached the job's host, so that wait --run
	// reaches it the same way without the run's inventory. It is set
	// with the intent to create, when the job is found by its marker or
	// set up, and with Complete and Cancel: each time the host is about
	// to create the job or has just answered for it that way; never when
	// a wait gives up on a host it did not reach, so a wrong way tried
	// once does not replace the one that worked. It is nil in entries
	// recorded before bitsremote kept it: those hosts are reached by
	// their name and the command line's flags, as they always were.
	Endpoint *HostRecord `json:"endpoint,omitempty"`
	Created  time.Time   `json:"created"`
	Updated  time.Time   `json:"updated"`
}

// HostRecord is how a host was reached: its WS-Management endpoint and
// the settings the host had of its own (from an inventory). The
// command line's settings (--user, --auth, --encryption) are not
// recorded: they are given again. It never holds a password.
type HostRecord struct {
	// URL is the endpoint: scheme, address, port and path.
	URL string `json:"url"`
	// User, Auth and Encryption are the host's own ansible_user,
	// ansible_winrm_transport and ansible_winrm_message_encryption;
	// empty when the command line's applied.
	User       string `json:"user,omitempty"`
	Auth       string `json:"auth,omitempty"`
	Encryption string `json:"encryption,omitempty"`
	// SPN is the host's own Kerberos service principal (see Host.SPN).
	SPN string `json:"spn,omitempty"`
	// Account is the user the run authenticated as, whichever setting
	// named it, so that a later command can tell whether it looks for
	// the run's jobs as the same user (see hostRun.reachedAsRecorded).
	// Empty in records made before bitsremote kept it.
	Account string `json:"account,omitempty"`
}

// Record is how c reaches its host, for the ledger.
func (c *Conn) Record() *HostRecord {
	return &HostRecord{URL: c.URL, User: c.Host.User, Auth: c.Host.Auth, Encryption: c.Host.Encryption, SPN: c.Host.SPN, Account: c.user}
}

// Host turns the record back into the Host it came from, named name (the
// ledger's name for it, which output and the ledger go on using). Its
// scheme and port are the recorded ones, so a command line's --port and
// --https do not apply to it.
func (r *HostRecord) Host(name string) (Host, error) {
	h, err := ParseHost(r.URL)
	if err != nil {
		return Host{}, fmt.Errorf("host %s: recorded endpoint: %w", name, err)
	}
	if r.Auth != "" {
		if _, err := transport.ParseAuth(r.Auth); err != nil {
			return Host{}, fmt.Errorf("host %s: recorded auth: %w", name, err)
		}
	}
	if r.Encryption != "" {
		if _, err := transport.ParseEncryption(r.Encryption); err != nil {
			return Host{}, fmt.Errorf("host %s: recorded encryption: %w", name, err)
		}
	}
	h.Name, h.User, h.Auth, h.Encryption, h.SPN = name, r.User, r.Auth, r.Encryption, r.SPN
	return h, nil
}

// Run is one fleet command: a transfer or import-csv over some hosts.
type Run struct {
	ID      string `json:"id"`
	Command string `json:"command"`
	// Fingerprint identifies the request (command, jobs, settings) so
	// that --resume finds the run the same command line started.
	Fingerprint string    `json:"fingerprint"`
	Args        string    `json:"args,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	// Finished is set when every job of the run reached a final step or
	// was left as asked.
	Finished time.Time `json:"finished,omitzero"`
	Resumes  int       `json:"resumes"`
}

// Ledger is the durable record of the jobs fleet commands create: a bbolt
// file, locked only for each transaction, so that concurrent bitsremote
// processes share it. It never holds a password.
type Ledger struct {
	path     string
	readOnly bool
	now      func() time.Time

	mu sync.Mutex // one open of the file at a time in this process

	// Put's group commit: while one commit runs, later Puts queue and go
	// together in the next one.
	qmu      sync.Mutex
	queue    []*pendingPut
	flushing bool
}

type pendingPut struct {
	key, val []byte
	done     chan error
}

var (
	bucketRuns = []byte("runs")
	bucketJobs = []byte("jobs")
)

// DefaultLedgerPath is $BITSREMOTE_LEDGER, else
// $XDG_STATE_HOME/bitsremote/ledger.db, else
// ~/.local/state/bitsremote/ledger.db.
func DefaultLedgerPath(getenv func(string) string) (string, error) {
	if p := getenv(EnvLedger); p != "" {
		return p, nil
	}
	if d := getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "bitsremote", "ledger.db"), nil
	}
	home := getenv("HOME")
	if home == "" || !filepath.IsAbs(home) {
		return "", fmt.Errorf("ledger: no state directory: set HOME, XDG_STATE_HOME or %s, or give --ledger", EnvLedger)
	}
	return filepath.Join(home, ".local", "state", "bitsremote", "ledger.db"), nil
}

// lockWait bounds the wait for another process's lock on the ledger.
// Every process holds the lock only for one transaction at a time, so a
// longer wait means something is wrong (a stuck process, a huge prune).
var lockWait = 10 * time.Second

// OpenLedger opens (creating with mode 0600, in a 0700 directory) the
// ledger at path for writing. The file is locked only while a
// transaction runs, so several bitsremote processes can share it.
func OpenLedger(path string) (*Ledger, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	l := &Ledger{path: path, now: time.Now}
	err := l.update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRuns, bucketJobs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A ledger written under an older umask may be readable by others;
	// it names hosts and paths, so keep it private.
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	return l, nil
}

// OpenLedgerReadOnly opens an existing ledger for reading.
func OpenLedgerReadOnly(path string) (*Ledger, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	l := &Ledger{path: path, now: time.Now, readOnly: true}
	if err := l.view(func(*bolt.Tx) error { return nil }); err != nil {
		return nil, err
	}
	return l, nil
}

// with opens the file, runs fn and closes it again, so that the lock is
// held only for the transaction. Opens within the process are serialised:
// two descriptors of one file would block each other's flock.
func (l *Ledger) with(readOnly bool, fn func(*bolt.DB) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	db, err := bolt.Open(l.path, 0o600, &bolt.Options{Timeout: lockWait, ReadOnly: readOnly})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return fmt.Errorf("ledger %s: %w", l.path, ErrLedgerBusy)
		}
		return fmt.Errorf("ledger %s: %w", l.path, err)
	}
	err = fn(db)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("ledger %s: %w", l.path, cerr)
	}
	return err
}

func (l *Ledger) update(fn func(*bolt.Tx) error) error {
	if l.readOnly {
		return fmt.Errorf("ledger %s: opened read-only", l.path)
	}
	return l.with(false, func(db *bolt.DB) error { return db.Update(fn) })
}

func (l *Ledger) view(fn func(*bolt.Tx) error) error {
	return l.with(l.readOnly, func(db *bolt.DB) error { return db.View(fn) })
}

// Path returns the ledger's file.
func (l *Ledger) Path() string { return l.path }

// Close releases the ledger. Nothing is held between transactions, so it
// only stops further use.
func (l *Ledger) Close() error { return nil }

// newID returns 16 random hex digits.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// BeginRun starts a run of command with the given fingerprint. With
// resume it returns the most recent unfinished run with the same
// fingerprint (ErrNoRun if there is none) and counts the resume.
func (l *Ledger) BeginRun(command, fingerprint, args string, resume bool) (*Run, error) {
	var run *Run
	err := l.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		now := l.now().UTC()
		if resume {
			var best *Run
			err := b.ForEach(func(k, v []byte) error {
				var r Run
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("run %s: %w", k, err)
				}
				if r.Fingerprint == fingerprint && r.Command == command && r.Finished.IsZero() &&
					(best == nil || r.Created.After(best.Created)) {
					best = &r
				}
				return nil
			})
			if err != nil {
				return err
			}
			if best == nil {
				return ErrNoRun
			}
			best.Resumes++
			best.Updated = now
			run = best
		} else {
			run = &Run{ID: now.Format("20060102T150405Z") + "-" + newID()[:8], Command: command,
				Fingerprint: fingerprint, Args: args, Created: now, Updated: now}
		}
		v, err := json.Marshal(run)
		if err != nil {
			return err
		}
		return b.Put([]byte(run.ID), v)
	})
	if err != nil {
		if errors.Is(err, ErrNoRun) {
			return nil, err
		}
		return nil, fmt.Errorf("ledger %s: begin run: %w", l.path, err)
	}
	return run, nil
}

// UnfinishedRun returns the latest unfinished run of command with the
// fingerprint, or nil.
func (l *Ledger) UnfinishedRun(command, fingerprint string) (*Run, error) {
	runs, err := l.Runs()
	if err != nil {
		return nil, err
	}
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		if r.Command == command && r.Fingerprint == fingerprint && r.Finished.IsZero() {
			return &r, nil
		}
	}
	return nil, nil
}

// Run returns the run with the given id, or nil when the ledger has none
// (a typo, or a run pruned since).
func (l *Ledger) Run(id string) (*Run, error) {
	var run *Run
	err := l.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		run = &Run{}
		if err := json.Unmarshal(v, run); err != nil {
			return fmt.Errorf("run %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", l.path, err)
	}
	return run, nil
}

// FinishRun marks the run finished, so that --resume no longer picks it
// and prune may remove it.
func (l *Ledger) FinishRun(id string) error {
	return l.updateRun(id, func(r *Run) { r.Finished = l.now().UTC(); r.Updated = r.Finished })
}

func (l *Ledger) updateRun(id string, fn func(*Run)) error {
	err := l.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		v := b.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("no run %s", id)
		}
		var r Run
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		fn(&r)
		nv, err := json.Marshal(&r)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	})
	if err != nil {
		return fmt.Errorf("ledger %s: run %s: %w", l.path, id, err)
	}
	return nil
}

// Runs returns every run, oldest first.
func (l *Ledger) Runs() ([]Run, error) {
	var runs []Run
	err := l.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("run %s: %w", k, err)
			}
			runs = append(runs, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", l.path, err)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Created.Before(runs[j].Created) })
	return runs, nil
}

// entryKey orders a run's jobs by host, then index.
func entryKey(runID, host string, index int) []byte {
	return fmt.Appendf(nil, "%s\x00%s\x00%08d", runID, host, index)
}

// Put writes e (setting Updated, and Created the first time). Concurrent
// Puts are committed together, each durable when Put returns.
func (l *Ledger) Put(e *Entry) error {
	now := l.now().UTC()
	if e.Created.IsZero() {
		e.Created = now
	}
	e.Updated = now
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	p := &pendingPut{key: entryKey(e.RunID, e.Host, e.Index), val: v, done: make(chan error, 1)}
	l.qmu.Lock()
	l.queue = append(l.queue, p)
	lead := !l.flushing
	l.flushing = true
	l.qmu.Unlock()
	if lead {
		l.flush()
	}
	if err := <-p.done; err != nil {
		return fmt.Errorf("record job %d on %s: %w", e.Index, e.Host, err)
	}
	return nil
}

// flush commits queued Puts, one transaction (one fsync) per batch, until
// the queue is empty.
func (l *Ledger) flush() {
	for {
		l.qmu.Lock()
		batch := l.queue
		l.queue = nil
		if len(batch) == 0 {
			l.flushing = false
			l.qmu.Unlock()
			return
		}
		l.qmu.Unlock()
		err := l.update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketJobs)
			for _, p := range batch {
				if err := b.Put(p.key, p.val); err != nil {
					return err
				}
			}
			return nil
		})
		for _, p := range batch {
			p.done <- err
		}
	}
}

// Entries returns a run's jobs ("" for every run's), by run, host and
// index.
func (l *Ledger) Entries(runID string) ([]Entry, error) {
	var out []Entry
	err := l.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJobs)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		prefix := []byte(nil)
		if runID != "" {
			prefix = []byte(runID + "\x00")
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("job %q: %w", strings.ReplaceAll(string(k), "\x00", "/"), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", l.path, err)
	}
	return out, nil
}

// HostEntries returns one host's jobs in a run, by index.
func (l *Ledger) HostEntries(runID, host string) (map[int]*Entry, error) {
	out := map[int]*Entry{}
	err := l.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketJobs).Cursor()
		prefix := []byte(runID + "\x00" + host + "\x00")
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("job %q: %w", strings.ReplaceAll(string(k), "\x00", "/"), err)
			}
			out[e.Index] = &e
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", l.path, err)
	}
	return out, nil
}

// PruneOptions choose what Prune removes.
type PruneOptions struct {
	// Before removes finished runs last updated before this time (zero:
	// any finished run).
	Before time.Time
	// Unfinished also removes unfinished runs, giving up on resuming
	// them; their jobs stay on the hosts.
	Unfinished bool
}

// Prune removes runs and their jobs; it returns how many of each.
func (l *Ledger) Prune(o PruneOptions) (runs, jobs int, err error) {
	err = l.update(func(tx *bolt.Tx) error {
		rb, jb := tx.Bucket(bucketRuns), tx.Bucket(bucketJobs)
		var victims [][]byte
		err := rb.ForEach(func(k, v []byte) error {
			var r Run
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("run %s: %w", k, err)
			}
			if r.Finished.IsZero() && !o.Unfinished {
				return nil
			}
			if !o.Before.IsZero() && !r.Updated.Before(o.Before) {
				return nil
			}
			victims = append(victims, append([]byte(nil), k...))
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range victims {
			prefix := append(append([]byte(nil), id...), 0)
			c := jb.Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
				if err := c.Delete(); err != nil {
					return err
				}
				jobs++
			}
			if err := rb.Delete(id); err != nil {
				return err
			}
			runs++
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("ledger %s: prune: %w", l.path, err)
	}
	return runs, jobs, nil
}
