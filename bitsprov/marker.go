package bitsprov

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/google/uuid"

	"github.com/bitsremote/bitsremote/wsman"
)

// MarkerPrefix starts every marker NewMarker makes.
const MarkerPrefix = "bitsremote:"

// maxDescription is the longest Description BITS accepts (UTF-16 code
// units).
const maxDescription = 1024

// NewMarker returns a new job marker, "bitsremote:" and a random UUID.
func NewMarker() string { return MarkerPrefix + uuid.NewString() }

// DescriptionWithMarker appends marker to a job description in brackets,
// so that the user's text stays readable: "nightly sync [bitsremote:…]",
// or the marker alone for an empty description. It refuses a marker with
// brackets or white space (SplitMarker could not find it again) and a
// result longer than the 1,024 characters BITS accepts.
func DescriptionWithMarker(desc, marker string) (string, error) {
	if marker == "" || strings.ContainsAny(marker, "[] \t\r\n") {
		return "", fmt.Errorf("bitsprov: CreateJob: marker %q must be non-empty, without brackets or white space", marker)
	}
	out := "[" + marker + "]"
	if desc != "" {
		out = desc + " " + out
	}
	// Windows counts UTF-16 code units.
	if n := len(utf16.Encode([]rune(out))); n > maxDescription {
		return "", fmt.Errorf("bitsprov: CreateJob: description with its marker is %d characters, more than the %d BITS accepts", n, maxDescription)
	}
	return out, nil
}

// SplitMarker undoes DescriptionWithMarker: it returns the user's text and
// the marker, or desc and "" when desc ends with no marker.
func SplitMarker(desc string) (text, marker string) {
	if !strings.HasSuffix(desc, "]") {
		return desc, ""
	}
	i := strings.LastIndexByte(desc, '[')
	if i < 0 {
		return desc, ""
	}
	marker = desc[i+1 : len(desc)-1]
	if marker == "" || strings.ContainsAny(marker, "[] \t\r\n") {
		return desc, ""
	}
	return strings.TrimSuffix(desc[:i], " "), marker
}

// ErrDuplicateMarker means more than one job on the host carries a marker
// that should be unique: a job was created twice.
var ErrDuplicateMarker = errors.New("more than one job carries the marker")

// FindJobsByMarker lists the jobs in the queue whose Description carries
// marker (as DescriptionWithMarker writes it), oldest first. Jobs that
// have left the queue (completed, cancelled) are not found.
func (c *Client) FindJobsByMarker(ctx context.Context, marker string) ([]*Job, error) {
	if marker == "" {
		return nil, errors.New("bitsprov: FindJobByMarker: empty marker")
	}
	jobs, err := c.Jobs(ctx, JobFilter{})
	if err != nil {
		return nil, err
	}
	var out []*Job
	for _, j := range jobs {
		if _, m := SplitMarker(j.Description); m == marker {
			out = append(out, j)
		}
	}
	return out, nil
}

// FindJobByMarker returns the job in the queue carrying marker, or nil and
// no error when there is none. When several carry it, the oldest is
// returned with an error matching ErrDuplicateMarker that names them all.
func (c *Client) FindJobByMarker(ctx context.Context, marker string) (*Job, error) {
	jobs, err := c.FindJobsByMarker(ctx, marker)
	switch {
	case err != nil:
		return nil, err
	case len(jobs) == 0:
		return nil, nil
	case len(jobs) > 1:
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.JobID
		}
		return jobs[0], fmt.Errorf("%s: %w %s: %s", c.host(), ErrDuplicateMarker, marker, strings.Join(ids, ", "))
	}
	return jobs[0], nil
}

// CreateUnknownError is a CreateJob whose outcome could not be settled:
// the call failed in a way that may have created the job, and the queue
// could not be searched for its marker (CheckErr), or the retries ran out.
// It matches wsman.ErrAmbiguous; FindJobByMarker(Marker) settles it later.
type CreateUnknownError struct {
	Host   string
	Marker string
	// Err is the last CreateJob failure; CheckErr the failed search.
	Err      error
	CheckErr error
}

func (e *CreateUnknownError) Error() string {
	s := fmt.Sprintf("%s: CreateJob: the job may or may not exist; look for marker %s", e.Host, e.Marker)
	if e.CheckErr != nil {
		s += fmt.Sprintf(" (searching for it failed: %v)", e.CheckErr)
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the CreateJob failure (which matches wsman.ErrAmbiguous).
func (e *CreateUnknownError) Unwrap() []error {
	return []error{e.Err, wsman.ErrAmbiguous}
}
