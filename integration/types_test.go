package integration

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The JSON shapes of DESIGN.md "Output", written from the contract rather
// than from the CLI's own types, so a renamed or dropped field fails here.

// jobJSON is a job as get, list, wait and transfer print it.
type jobJSON struct {
	Host                string       `json:"host"`
	Row                 int          `json:"row"`
	JobID               string       `json:"jobId"`
	DisplayName         string       `json:"displayName"`
	Description         string       `json:"description"`
	Type                *string      `json:"type"`
	Priority            string       `json:"priority"`
	State               string       `json:"state"`
	StateCode           int          `json:"stateCode"`
	Owner               string       `json:"owner"`
	Files               []fileJSON   `json:"files"`
	BytesTotal          *uint64      `json:"bytesTotal"`
	BytesTransferred    uint64       `json:"bytesTransferred"`
	FilesTotal          int          `json:"filesTotal"`
	FilesTransferred    int          `json:"filesTransferred"`
	TransientErrorCount int          `json:"transientErrorCount"`
	Created             *time.Time   `json:"created"`
	Modified            *time.Time   `json:"modified"`
	Completed           *time.Time   `json:"completed"`
	MinimumRetryDelay   int64        `json:"minimumRetryDelay"`
	NoProgressTimeout   int64        `json:"noProgressTimeout"`
	Error               *errorJSON   `json:"error"`
	Outcome             *outcomeJSON `json:"outcome"`
}

// fileJSON is one file of a job.
type fileJSON struct {
	RemoteURL        string  `json:"remoteUrl"`
	LocalFile        string  `json:"localFile"`
	BytesTotal       *uint64 `json:"bytesTotal"`
	BytesTransferred uint64  `json:"bytesTransferred"`
	Completed        bool    `json:"completed"`
}

// errorJSON is the "error" object: GetError's answer.
type errorJSON struct {
	Context            string `json:"context"`
	ContextDescription string `json:"contextDescription"`
	Code               string `json:"code"`
	CodeName           string `json:"codeName"`
	Description        string `json:"description"`
}

// outcomeJSON is how a wait ended.
type outcomeJSON struct {
	Result         string  `json:"result"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`
	Polls          int     `json:"polls"`
	Detail         string  `json:"detail"`
	ReturnCode     string  `json:"returnCode"`
	ReturnCodeName string  `json:"returnCodeName"`
}

// createJSON is what create prints.
type createJSON struct {
	Host      string `json:"host"`
	JobID     string `json:"jobId"`
	Suspended bool   `json:"suspended"`
}

// actionJSON is what resume, suspend, cancel, complete, priority,
// add-file, set-credentials and set-proxy print.
type actionJSON struct {
	Host           string `json:"host"`
	JobID          string `json:"jobId"`
	Action         string `json:"action"`
	ReturnCode     string `json:"returnCode"`
	ReturnCodeName string `json:"returnCodeName"`
	Detail         string `json:"detail"`
}

// errorCmdJSON is what "error" prints.
type errorCmdJSON struct {
	Host  string     `json:"host"`
	JobID string     `json:"jobId"`
	Error *errorJSON `json:"error"`
}

// rowJSON is one import-csv result: a job, or a row or host that failed.
type rowJSON struct {
	jobJSON
	ExitCode int    `json:"exitCode"`
	Failure  string `json:"failure"`
}

// jobKeys are the fields every job record carries, null or not.
var jobKeys = []string{"host", "jobId", "displayName", "description", "priority", "state", "stateCode", "owner", "files",
	"bytesTotal", "bytesTransferred", "filesTotal", "filesTransferred", "created", "modified", "completed", "error"}

// guidRE is a JobId as BITS prints it.
var guidRE = regexp.MustCompile(`^\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$`)

// wantKeys fails unless the JSON object obj has every key: a field that is
// unknown must be null, not missing.
func wantKeys(t *testing.T, obj json.RawMessage, keys ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, obj)
	}
	var missing []string
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		t.Errorf("JSON object lacks %s: %s", strings.Join(missing, ", "), obj)
	}
}

// firstKey returns the first key of a JSON object, as written.
func firstKey(t *testing.T, obj []byte) string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(obj)))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", obj)
	}
	tok, err := dec.Token()
	if err != nil {
		t.Fatalf("bad JSON object: %v: %s", err, obj)
	}
	k, _ := tok.(string)
	return k
}

// checkTimes checks that created and modified are set, ordered, and
// within the test's run, and that completed is set exactly when done.
func checkTimes(t *testing.T, j jobJSON, start time.Time, done bool) {
	t.Helper()
	now := time.Now().Add(time.Second)
	start = start.Add(-time.Second)
	if j.Created == nil || j.Modified == nil {
		t.Fatalf("job %s: created %v, modified %v; want both set", j.JobID, j.Created, j.Modified)
	}
	if j.Created.Before(start) || j.Created.After(now) {
		t.Errorf("job %s: created %v, not during the test (%v to %v)", j.JobID, j.Created, start, now)
	}
	if j.Modified.Before(*j.Created) || j.Modified.After(now) {
		t.Errorf("job %s: modified %v, want between created %v and now", j.JobID, j.Modified, j.Created)
	}
	switch {
	case done && j.Completed == nil:
		t.Errorf("job %s: completed is null, want the completion time", j.JobID)
	case done && (j.Completed.Before(*j.Created) || j.Completed.After(now)):
		t.Errorf("job %s: completed %v, want between created %v and now", j.JobID, j.Completed, j.Created)
	case !done && j.Completed != nil:
		t.Errorf("job %s: completed %v, want null", j.JobID, j.Completed)
	}
}

// jobIDs returns the JobIds of records, sorted.
func jobIDs(js []jobJSON) []string {
	var ids []string
	for _, j := range js {
		ids = append(ids, j.JobID)
	}
	slices.Sort(ids)
	return ids
}

// markerRE is the creation marker bitsremote appends to a job's
// description so that a retried create can find the job it made.
var markerRE = regexp.MustCompile(` ?\[bitsremote:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\]$`)

// stripMarker removes the creation marker from a job's description,
// failing the test if there is more than one.
func stripMarker(t *testing.T, j *jobJSON) {
	t.Helper()
	j.Description = markerRE.ReplaceAllString(j.Description, "")
	if strings.Contains(j.Description, "[bitsremote:") {
		t.Errorf("job %s: description %q holds a malformed or second marker", j.JobID, j.Description)
	}
}

// u64 returns a pointer to n, for comparing nullable sizes.
func u64(n uint64) *uint64 { return &n }
