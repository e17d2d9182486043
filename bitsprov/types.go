// Package bitsprov drives Windows BITS jobs through the WMI BITS provider
// (root\microsoft\bits, classes BitsClientJob and BitsCompactServerUrlGroup)
// over WS-Management: typed jobs and enums, the provider's methods, the BITS
// and WMI error codes by name, and a poller that waits for a job the way
// Microsoft's PowerShell loop does.
package bitsprov

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bitsremote/bitsremote/wsman"
)

// SizeUnknown is BG_SIZE_UNKNOWN: the provider reports it in BytesTotal
// until BITS knows the size. It is never a byte count.
const SizeUnknown uint64 = 0xFFFFFFFFFFFFFFFF

// Job is one BitsClientJob instance.
type Job struct {
	JobID       string `json:"jobId"`
	DisplayName string `json:"displayName"`
	Description string `json:"description"`
	// Type is nil when the host does not report it: the provider's
	// BitsClientJob class documents no Type property.
	Type     *JobType `json:"type"`
	Priority Priority `json:"priority"`
	State    State    `json:"state"`
	Owner    string   `json:"owner"`
	Files    []File   `json:"files"`
	// BytesTotal is nil while BITS does not know the size (SizeUnknown on
	// the wire), so that JSON renders null instead of 18446744073709551615.
	BytesTotal       *uint64 `json:"bytesTotal"`
	BytesTransferred uint64  `json:"bytesTransferred"`
	FilesTotal       uint32  `json:"filesTotal"`
	FilesTransferred uint32  `json:"filesTransferred"`
	// Created, Modified and Completed are decoded from FILETIME; the zero
	// time means the host sent 0 ("not set", e.g. an unfinished job's
	// completion time) or nothing.
	Created   time.Time `json:"created"`
	Modified  time.Time `json:"modified"`
	Completed time.Time `json:"completed"`
	// MinimumRetryDelay and NoProgressTimeout are whole seconds on the wire.
	MinimumRetryDelay   time.Duration `json:"minimumRetryDelay"`
	NoProgressTimeout   time.Duration `json:"noProgressTimeout"`
	TransientErrorCount uint32        `json:"transientErrorCount"`
}

// BytesTotalKnown reports whether BITS knows the job's total size.
func (j *Job) BytesTotalKnown() bool { return j.BytesTotal != nil }

// MarshalJSON renders the job with the stable field names of the CLI
// contract: times unset are null, durations are whole seconds, and the
// state is given both by name ("state") and number ("stateCode").
func (j Job) MarshalJSON() ([]byte, error) {
	type plain Job
	return json.Marshal(struct {
		plain
		StateCode         uint16     `json:"stateCode"`
		Created           *time.Time `json:"created"`
		Modified          *time.Time `json:"modified"`
		Completed         *time.Time `json:"completed"`
		MinimumRetryDelay int64      `json:"minimumRetryDelay"`
		NoProgressTimeout int64      `json:"noProgressTimeout"`
	}{
		plain:             plain(j),
		StateCode:         uint16(j.State),
		Created:           timePtr(j.Created),
		Modified:          timePtr(j.Modified),
		Completed:         timePtr(j.Completed),
		MinimumRetryDelay: int64(j.MinimumRetryDelay / time.Second),
		NoProgressTimeout: int64(j.NoProgressTimeout / time.Second),
	})
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// File is one BitsClientFile (an embedded object of BitsClientJob.Files).
type File struct {
	RemoteURL string `json:"remoteUrl"`
	LocalFile string `json:"localFile"`
	// BytesTotal is nil while the size is unknown.
	BytesTotal       *uint64 `json:"bytesTotal"`
	BytesTransferred uint64  `json:"bytesTransferred"`
	// Completed is true once the file transferred successfully.
	Completed bool `json:"completed"`
}

// BytesTotalKnown reports whether BITS knows the file's size.
func (f *File) BytesTotalKnown() bool { return f.BytesTotal != nil }

// filetimeUnixEpoch is 1970-01-01T00:00:00Z as a FILETIME (100-ns ticks
// since 1601-01-01T00:00:00Z).
const filetimeUnixEpoch = 116444736000000000

// FiletimeToTime decodes a FILETIME packed in a uint64 (HighDateTime in
// the high 32 bits), as the provider's JobCreationTime and friends are.
// 0 means "not set" and yields the zero time.Time. The result is UTC and
// exact to the 100 ns tick.
func FiletimeToTime(ft uint64) time.Time {
	if ft == 0 {
		return time.Time{}
	}
	if ft >= filetimeUnixEpoch {
		d := ft - filetimeUnixEpoch
		return time.Unix(int64(d/1e7), int64(d%1e7)*100).UTC()
	}
	d := filetimeUnixEpoch - ft
	return time.Unix(-int64(d/1e7), -int64(d%1e7)*100).UTC()
}

// TimeToFiletime encodes t as a FILETIME, truncating to the 100 ns tick.
// The zero time and times before 1601 (which FILETIME cannot hold) give 0,
// "not set", so that FiletimeToTime(TimeToFiletime(t)) round-trips every
// value the provider can send.
func TimeToFiletime(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	sec := t.Unix()
	ns := int64(t.Nanosecond())
	// Seconds from 1601 to 1970: 11644473600.
	const epochSec = filetimeUnixEpoch / 1e7
	if sec < -epochSec {
		return 0
	}
	s := uint64(sec + epochSec)
	if s > (SizeUnknown-uint64(ns/100))/1e7 {
		return SizeUnknown
	}
	return s*1e7 + uint64(ns/100)
}

// props gives case-insensitive typed access to an instance's properties.
// It reads Instance.Props directly so that decoding needs nothing beyond
// the declared data structure, and so that every error names the class
// and the property.
type props struct {
	in *wsman.Instance
}

// jobProps is props for JobFromInstance. at holds for each of jobFields
// the index in in.Props of the first property of that name (-1: absent):
// looking each name up among a job's properties was the most expensive
// part of listing jobs once the XML was read quickly, and one pass over
// the properties finds them all.
type jobProps struct {
	props
	at [len(jobFields)]int32
}

// jobFields are the properties JobFromInstance reads.
var jobFields = [...]string{
	"JobId", "DisplayName", "Description", "Owner", "Type", "Priority",
	"State", "BytesTotal", "BytesTransferred", "FilesTotal",
	"FilesTransferred", "TransientErrorCount", "JobCreationTime",
	"JobLastModificationTime", "JobCompletionTime", "MinimumRetryDelay",
	"NoProgressTimeout", "Files",
}

// index indexes in's properties: the first property matching each of
// jobFields, as props.find would pick it by scanning.
func (p *jobProps) index(in *wsman.Instance) {
	p.in = in
	for k := range p.at {
		p.at[k] = -1
	}
	for i := range p.in.Props {
		name := p.in.Props[i].Name
		cands := jobFieldsAll[:]
		if isASCII(name) {
			// Two ASCII names of different lengths never fold together;
			// a non-ASCII name may (U+212A KELVIN SIGN folds to k).
			if len(name) >= len(jobFieldsByLen) {
				continue
			}
			cands = jobFieldsByLen[len(name)]
		}
		for _, k := range cands {
			if p.at[k] < 0 && sameName(name, jobFields[k]) {
				p.at[k] = int32(i)
			}
		}
	}
}

// jobFieldsAll and jobFieldsByLen list indexes in jobFields: all of
// them, and those of each length.
var jobFieldsAll, jobFieldsByLen = func() (all [len(jobFields)]int8, byLen [24][]int8) {
	for k, f := range jobFields {
		all[k] = int8(k)
		byLen[len(f)] = append(byLen[len(f)], int8(k))
	}
	return all, byLen
}()

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// find returns the first property whose name matches name
// case-insensitively, or nil.
func (p props) find(name string) *wsman.Property {
	for i := range p.in.Props {
		if pr := &p.in.Props[i]; sameName(pr.Name, name) {
			return pr
		}
	}
	return nil
}

// find is props.find through the index; name must be one of jobFields.
func (p *jobProps) find(name string) *wsman.Property {
	for k, f := range jobFields {
		if f == name {
			if i := p.at[k]; i >= 0 {
				return &p.in.Props[i]
			}
			return nil
		}
	}
	panic("bitsprov: " + name + " is not one of jobFields")
}

func (p *jobProps) str(name string) (string, error) {
	s, _, err := p.valueOf(p.find(name))
	return s, err
}

func (p *jobProps) uint(name string, bits int) (uint64, bool, error) {
	return p.uintOf(p.find(name), name, bits)
}

func (p *jobProps) objects(name string) ([]*wsman.Instance, error) {
	return p.objectsOf(p.find(name))
}

// value returns the single text value of name; ok is false when the
// property is absent or xsi:nil (both mean "not reported").
func (p props) value(name string) (string, bool, error) {
	return p.valueOf(p.find(name))
}

// valueOf is value for the property pr (nil: absent).
func (p props) valueOf(pr *wsman.Property) (string, bool, error) {
	if pr == nil {
		return "", false, nil
	}
	if len(pr.Values) == 0 || (len(pr.Values) == 1 && pr.Values[0].Kind == wsman.KindNil) {
		return "", false, nil
	}
	if len(pr.Values) > 1 {
		return "", false, fmt.Errorf("%s.%s: %d values where one was expected", p.in.ClassName, pr.Name, len(pr.Values))
	}
	v := &pr.Values[0]
	if v.Kind != wsman.KindText {
		return "", false, fmt.Errorf("%s.%s: not a plain value", p.in.ClassName, pr.Name)
	}
	return v.Text, true, nil
}

// sameName is strings.EqualFold (WMI names are case-insensitive) with a
// cheap first test: two ASCII first bytes that differ in more than case
// cannot fold together.
func sameName(a, b string) bool {
	if a == b {
		return true
	}
	if a == "" || b == "" {
		return false
	}
	if x, y := a[0], b[0]; x < 0x80 && y < 0x80 && x|0x20 != y|0x20 {
		return false
	}
	return strings.EqualFold(a, b)
}

func (p props) str(name string) (string, error) {
	s, _, err := p.value(name)
	return s, err
}

// uint parses an unsigned property of the given bit size; absent is 0.
func (p props) uint(name string, bits int) (uint64, bool, error) {
	return p.uintOf(p.find(name), name, bits)
}

// uintOf is uint for the property pr (nil: absent) found as name.
func (p props) uintOf(pr *wsman.Property, name string, bits int) (uint64, bool, error) {
	s, ok, err := p.valueOf(pr)
	if err != nil || !ok {
		return 0, false, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, bits)
	if err != nil {
		return 0, false, fmt.Errorf("%s.%s: %q is not a uint%d", p.in.ClassName, name, s, bits)
	}
	return n, true, nil
}

func (p props) bool(name string) (bool, error) {
	s, ok, err := p.value(name)
	if err != nil || !ok {
		return false, err
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s.%s: %q is not a boolean", p.in.ClassName, name, s)
}

// objectsOf returns the embedded objects of the property pr; a nil or
// absent (nil pr) array is empty.
func (p props) objectsOf(pr *wsman.Property) ([]*wsman.Instance, error) {
	if pr == nil {
		return nil, nil
	}
	var out []*wsman.Instance
	for _, v := range pr.Values {
		switch v.Kind {
		case wsman.KindNil:
			continue
		case wsman.KindObject:
			if v.Object != nil {
				out = append(out, v.Object)
			}
		default:
			return nil, fmt.Errorf("%s.%s: not an embedded object", p.in.ClassName, pr.Name)
		}
	}
	return out, nil
}

// size decodes a byte count that may be SizeUnknown.
func size(n uint64, ok bool) *uint64 {
	if !ok || n == SizeUnknown {
		return nil
	}
	return &n
}

// JobFromInstance decodes a BitsClientJob instance (a GetResponse body or
// an enumeration item). Property names match case-insensitively, as WMI
// matches them; absent or nil properties stay zero. Only JobId is required.
func JobFromInstance(in *wsman.Instance) (*Job, error) {
	if in == nil {
		return nil, fmt.Errorf("bitsprov: decode job: no instance")
	}
	var p jobProps
	p.index(in)
	j := &Job{}
	var err error
	fail := func(e error) (*Job, error) { return nil, fmt.Errorf("bitsprov: decode job: %w", e) }

	if j.JobID, err = p.str("JobId"); err != nil {
		return fail(err)
	}
	if j.JobID == "" {
		return fail(fmt.Errorf("%s has no JobId", in.ClassName))
	}
	if j.DisplayName, err = p.str("DisplayName"); err != nil {
		return fail(err)
	}
	if j.Description, err = p.str("Description"); err != nil {
		return fail(err)
	}
	if j.Owner, err = p.str("Owner"); err != nil {
		return fail(err)
	}
	if n, ok, err := p.uint("Type", 16); err != nil {
		return fail(err)
	} else if ok {
		t := JobType(n)
		j.Type = &t
	}
	n, _, err := p.uint("Priority", 32)
	if err != nil {
		return fail(err)
	}
	j.Priority = Priority(n)
	if n, _, err = p.uint("State", 16); err != nil {
		return fail(err)
	}
	j.State = State(n)
	n, ok, err := p.uint("BytesTotal", 64)
	if err != nil {
		return fail(err)
	}
	j.BytesTotal = size(n, ok)
	if j.BytesTransferred, _, err = p.uint("BytesTransferred", 64); err != nil {
		return fail(err)
	}
	for _, f := range []struct {
		name string
		dst  *uint32
	}{
		{"FilesTotal", &j.FilesTotal},
		{"FilesTransferred", &j.FilesTransferred},
		{"TransientErrorCount", &j.TransientErrorCount},
	} {
		if n, _, err = p.uint(f.name, 32); err != nil {
			return fail(err)
		}
		*f.dst = uint32(n)
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{
		{"JobCreationTime", &j.Created},
		{"JobLastModificationTime", &j.Modified},
		{"JobCompletionTime", &j.Completed},
	} {
		if n, _, err = p.uint(f.name, 64); err != nil {
			return fail(err)
		}
		*f.dst = FiletimeToTime(n)
	}
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{
		{"MinimumRetryDelay", &j.MinimumRetryDelay},
		{"NoProgressTimeout", &j.NoProgressTimeout},
	} {
		if n, _, err = p.uint(f.name, 32); err != nil {
			return fail(err)
		}
		*f.dst = time.Duration(n) * time.Second
	}
	files, err := p.objects("Files")
	if err != nil {
		return fail(err)
	}
	for _, fo := range files {
		f, err := fileFromInstance(fo)
		if err != nil {
			return fail(err)
		}
		j.Files = append(j.Files, f)
	}
	return j, nil
}

func fileFromInstance(in *wsman.Instance) (File, error) {
	p := props{in}
	var f File
	var err error
	if f.RemoteURL, err = p.str("RemoteUrl"); err != nil {
		return f, err
	}
	if f.LocalFile, err = p.str("LocalFile"); err != nil {
		return f, err
	}
	n, ok, err := p.uint("BytesTotal", 64)
	if err != nil {
		return f, err
	}
	f.BytesTotal = size(n, ok)
	if f.BytesTransferred, _, err = p.uint("BytesTransferred", 64); err != nil {
		return f, err
	}
	if f.Completed, err = p.bool("Completed"); err != nil {
		return f, err
	}
	return f, nil
}
