// Package bitsprov drives Windows BITS jobs through the WMI BITS provider
// (root\microsoft\bits, classes BitsClientJob and BitsCompactServerUrlGroup)
// over WS-Management: typed jobs and enums, the provider's methods, the BITS
// and WMI error codes by name, and a poller that waits for a job the way
// Microsoft's PowerShell loop does.
package bitsprov

import (
	"encoding/json"
	"fmt"
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

// fieldIndex holds, for each name of a field list (jobFields,
// fileFields), the first property of that name: looking each name up
// among a job's properties was the most expensive part of listing jobs
// once the XML was read quickly, and one pass over the properties finds
// them all. It is filled either from an Instance (index) or from a view
// of the reply (indexView), and decoding reads only the fields, so that
// both give the same job and the same errors.
type fieldIndex struct {
	class string // the object's ClassName, for errors
	f     [len(jobFields)]field
}

// field is one indexed property as valueOf reads it.
type field struct {
	// name is the property's name as sent; "" when absent (no name
	// matching a field is empty).
	name  string
	count int             // how many values it has
	kind  wsman.ValueKind // of the first value, if any
	text  string          // of the first value
	prop  *wsman.Property // the property (index)
	view  wsman.PropView  // its first element (indexView)
}

// Indexes in jobFields.
const (
	jfJobID = iota
	jfDisplayName
	jfDescription
	jfOwner
	jfType
	jfPriority
	jfState
	jfBytesTotal
	jfBytesTransferred
	jfFilesTotal
	jfFilesTransferred
	jfTransientErrorCount
	jfJobCreationTime
	jfJobLastModificationTime
	jfJobCompletionTime
	jfMinimumRetryDelay
	jfNoProgressTimeout
	jfFiles
)

// jobFields are the properties JobFromInstance reads.
var jobFields = [...]string{
	jfJobID: "JobId", jfDisplayName: "DisplayName", jfDescription: "Description",
	jfOwner: "Owner", jfType: "Type", jfPriority: "Priority", jfState: "State",
	jfBytesTotal: "BytesTotal", jfBytesTransferred: "BytesTransferred",
	jfFilesTotal: "FilesTotal", jfFilesTransferred: "FilesTransferred",
	jfTransientErrorCount: "TransientErrorCount", jfJobCreationTime: "JobCreationTime",
	jfJobLastModificationTime: "JobLastModificationTime", jfJobCompletionTime: "JobCompletionTime",
	jfMinimumRetryDelay: "MinimumRetryDelay", jfNoProgressTimeout: "NoProgressTimeout",
	jfFiles: "Files",
}

// jobField is the index in jobFields of the name spelt exactly so, or -1.
func jobField(name string) int {
	switch name {
	case "JobId":
		return jfJobID
	case "DisplayName":
		return jfDisplayName
	case "Description":
		return jfDescription
	case "Owner":
		return jfOwner
	case "Type":
		return jfType
	case "Priority":
		return jfPriority
	case "State":
		return jfState
	case "BytesTotal":
		return jfBytesTotal
	case "BytesTransferred":
		return jfBytesTransferred
	case "FilesTotal":
		return jfFilesTotal
	case "FilesTransferred":
		return jfFilesTransferred
	case "TransientErrorCount":
		return jfTransientErrorCount
	case "JobCreationTime":
		return jfJobCreationTime
	case "JobLastModificationTime":
		return jfJobLastModificationTime
	case "JobCompletionTime":
		return jfJobCompletionTime
	case "MinimumRetryDelay":
		return jfMinimumRetryDelay
	case "NoProgressTimeout":
		return jfNoProgressTimeout
	case "Files":
		return jfFiles
	}
	return -1
}

// Indexes in fileFields.
const (
	ffRemoteURL = iota
	ffLocalFile
	ffBytesTotal
	ffBytesTransferred
	ffCompleted
)

// fileFields are the properties fileFromInstance reads.
var fileFields = [...]string{
	ffRemoteURL: "RemoteUrl", ffLocalFile: "LocalFile", ffBytesTotal: "BytesTotal",
	ffBytesTransferred: "BytesTransferred", ffCompleted: "Completed",
}

// fileField is jobField for fileFields.
func fileField(name string) int {
	switch name {
	case "RemoteUrl":
		return ffRemoteURL
	case "LocalFile":
		return ffLocalFile
	case "BytesTotal":
		return ffBytesTotal
	case "BytesTransferred":
		return ffBytesTransferred
	case "Completed":
		return ffCompleted
	}
	return -1
}

// index indexes in's properties by fields: the first property matching
// each, as props.find would pick it by scanning. exact finds a name
// spelt as in fields; any other name is compared with each field as
// props.find compares (sameName, strings.EqualFold).
func (p *fieldIndex) index(in *wsman.Instance, fields []string, exact func(string) int) {
	p.class = in.ClassName
	fs := p.f[:len(fields)]
	clear(fs)
	for i := range in.Props {
		pr := &in.Props[i]
		k := exact(pr.Name)
		if k < 0 {
			k = foldField(pr.Name, fields)
		}
		if k < 0 || fs[k].name != "" {
			continue
		}
		f := &fs[k]
		f.name, f.count, f.prop = pr.Name, len(pr.Values), pr
		if f.count > 0 {
			f.kind, f.text = pr.Values[0].Kind, pr.Values[0].Text
		}
	}
}

// foldField is the index of the field name matches as props.find
// compares names, or -1.
func foldField(name string, fields []string) int {
	for k, f := range fields {
		if sameName(name, f) {
			return k
		}
	}
	return -1
}

// indexView is index for an object seen through a view, read as
// ParseInstance would have built its Instance: a property is every
// element of one exact name, and the properties are in the order their
// first elements come. So the first property matching a field is the one
// of the first element that matches it, and its values are the elements
// of exactly that element's name.
func (p *fieldIndex) indexView(o wsman.ObjectView, fields []string, exact func(string) int) {
	p.class = o.ClassName()
	fs := p.f[:len(fields)]
	clear(fs)
	for v := o.First(); v.Valid(); v = v.Next() {
		name := v.Name()
		k := exact(name)
		if k < 0 {
			if k = foldField(name, fields); k < 0 {
				continue
			}
		}
		switch f := &fs[k]; {
		case f.name == "":
			f.name, f.count, f.view = name, 1, v
		case f.name == name:
			f.count++
		}
	}
	for k := range fs {
		// Only a lone value is read (valueOf); more are an error
		// whatever they hold.
		if f := &fs[k]; f.count == 1 {
			f.kind, f.text = f.view.Value()
		}
	}
}

// str is the text of field k ("" when absent or nil).
func (p *fieldIndex) str(k int) (string, error) {
	s, _, err := p.valueOf(&p.f[k])
	return s, err
}

// valueOf is props.valueOf for an indexed field.
func (p *fieldIndex) valueOf(f *field) (string, bool, error) {
	if f.count == 0 || (f.count == 1 && f.kind == wsman.KindNil) {
		return "", false, nil
	}
	if f.count > 1 {
		return "", false, fmt.Errorf("%s.%s: %d values where one was expected", p.class, f.name, f.count)
	}
	if f.kind != wsman.KindText {
		return "", false, fmt.Errorf("%s.%s: not a plain value", p.class, f.name)
	}
	return f.text, true, nil
}

// uint is props.uint for the field k named name.
func (p *fieldIndex) uint(k int, name string, bits int) (uint64, bool, error) {
	s, ok, err := p.valueOf(&p.f[k])
	if err != nil || !ok {
		return 0, false, err
	}
	n, ok := parseUint(s, bits)
	if !ok {
		return 0, false, fmt.Errorf("%s.%s: %q is not a uint%d", p.class, name, s, bits)
	}
	return n, true, nil
}

// bool is props.bool for the field k named name.
func (p *fieldIndex) bool(k int, name string) (bool, error) {
	s, ok, err := p.valueOf(&p.f[k])
	if err != nil || !ok {
		return false, err
	}
	return parseBool(s, p.class, name)
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
	n, ok := parseUint(s, bits)
	if !ok {
		return 0, false, fmt.Errorf("%s.%s: %q is not a uint%d", p.in.ClassName, name, s, bits)
	}
	return n, true, nil
}

// parseUint is strconv.ParseUint(strings.TrimSpace(s), 10, bits) without
// the error value: decimal digits only, at most bits wide.
func parseUint(s string, bits int) (uint64, bool) {
	if s == "" || s[0] <= ' ' || s[len(s)-1] <= ' ' || s[0] >= 0x80 || s[len(s)-1] >= 0x80 {
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, false
		}
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		d := s[i] - '0'
		if d > 9 || n > (1<<64-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(d)
		if n < uint64(d) {
			return 0, false // wrapped
		}
	}
	if bits < 64 && n>>bits != 0 {
		return 0, false
	}
	return n, true
}

func (p props) bool(name string) (bool, error) {
	return p.boolOf(p.find(name), name)
}

// boolOf is bool for the property pr (nil: absent) found as name.
func (p props) boolOf(pr *wsman.Property, name string) (bool, error) {
	s, ok, err := p.valueOf(pr)
	if err != nil || !ok {
		return false, err
	}
	return parseBool(s, p.in.ClassName, name)
}

// parseBool reads a boolean value of class.name as WMI writes them.
func parseBool(s, class, name string) (bool, error) {
	switch s {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%s.%s: %q is not a boolean", class, name, s)
}

// sizeIn decodes a byte count that may be SizeUnknown into *dst.
func sizeIn(dst *uint64, n uint64, ok bool) *uint64 {
	if !ok || n == SizeUnknown {
		return nil
	}
	*dst = n
	return dst
}

// jobBlock is a decoded job with room for its first file and both of
// their sizes: one allocation per job of the usual kind (one file)
// instead of four.
type jobBlock struct {
	job   Job
	file  [1]File
	sizes [2]uint64
}

// JobFromInstance decodes a BitsClientJob instance (a GetResponse body or
// an enumeration item). Property names match case-insensitively, as WMI
// matches them; absent or nil properties stay zero. Only JobId is required.
func JobFromInstance(in *wsman.Instance) (*Job, error) {
	if in == nil {
		return nil, fmt.Errorf("bitsprov: decode job: no instance")
	}
	j, err := decodeJobInstance(in)
	if err != nil {
		return nil, fmt.Errorf("bitsprov: decode job: %w", err)
	}
	return j, nil
}

// JobFromView decodes a BitsClientJob seen through a view of an
// enumeration reply (wsman.Client.EnumerateViews) into exactly the Job,
// or the error, that JobFromInstance gives for the Instance the same
// element reads as; it keeps no reference to the view.
func JobFromView(o wsman.ObjectView) (*Job, error) {
	if !o.Valid() {
		return nil, fmt.Errorf("bitsprov: decode job: no instance")
	}
	var p fieldIndex
	p.indexView(o, jobFields[:], jobField)
	blk, err := decodeJob(&p)
	if err == nil && p.f[jfFiles].name != "" {
		err = blk.filesFromView(&p)
	}
	if err != nil {
		return nil, fmt.Errorf("bitsprov: decode job: %w", err)
	}
	return &blk.job, nil
}

// JobFromItemView decodes the job of an item of wsman's EnumerateViews or
// GetView: from the view when the reply was viewed (JobFromView), else
// from the Instance the reply was read into (JobFromInstance). An item
// with neither (an endpoint reference alone) gives no job and no error.
func JobFromItemView(v wsman.ItemView) (*Job, error) {
	switch {
	case v.Object.Valid():
		return JobFromView(v.Object)
	case v.Item != nil && v.Item.Instance != nil:
		return JobFromInstance(v.Item.Instance)
	}
	return nil, nil
}

// filesFromView decodes the Files property (present) indexed in p from
// its elements, as decodeJobInstance does from its Values.
func (blk *jobBlock) filesFromView(p *fieldIndex) error {
	f := &p.f[jfFiles]
	var fp fieldIndex
	if f.count == 1 {
		// The usual case, whose value indexView has read.
		switch f.kind {
		case wsman.KindNil:
			return nil
		case wsman.KindObject:
			fp.indexView(f.view.Object(), fileFields[:], fileField)
			return blk.addFile(&fp)
		}
		return fmt.Errorf("%s.%s: not an embedded object", p.class, f.name)
	}
	for v := f.view; v.Valid(); v = v.Next() {
		if v.Name() != f.name {
			continue
		}
		if k := v.Kind(); k != wsman.KindNil && k != wsman.KindObject {
			return fmt.Errorf("%s.%s: not an embedded object", p.class, f.name)
		}
	}
	for v := f.view; v.Valid(); v = v.Next() {
		if v.Name() != f.name || v.Kind() != wsman.KindObject {
			continue
		}
		fp.indexView(v.Object(), fileFields[:], fileField)
		if err := blk.addFile(&fp); err != nil {
			return err
		}
	}
	return nil
}

// decodeJobInstance is JobFromInstance's decoding.
func decodeJobInstance(in *wsman.Instance) (*Job, error) {
	var p fieldIndex
	p.index(in, jobFields[:], jobField)
	blk, err := decodeJob(&p)
	if err != nil {
		return nil, err
	}
	f := &p.f[jfFiles]
	if f.name == "" {
		return &blk.job, nil
	}
	// The embedded objects of Files, as props.objectsOf reads them.
	for _, v := range f.prop.Values {
		if v.Kind != wsman.KindNil && v.Kind != wsman.KindObject {
			return nil, fmt.Errorf("%s.%s: not an embedded object", p.class, f.name)
		}
	}
	for _, v := range f.prop.Values {
		if v.Kind != wsman.KindObject || v.Object == nil {
			continue
		}
		var fp fieldIndex
		fp.index(v.Object, fileFields[:], fileField)
		if err := blk.addFile(&fp); err != nil {
			return nil, err
		}
	}
	return &blk.job, nil
}

// decodeJob decodes the job indexed in p but for its Files, which the
// caller decodes into the block with addFile.
func decodeJob(p *fieldIndex) (*jobBlock, error) {
	blk := &jobBlock{}
	j := &blk.job
	var err error
	if j.JobID, err = p.str(jfJobID); err != nil {
		return nil, err
	}
	if j.JobID == "" {
		return nil, fmt.Errorf("%s has no JobId", p.class)
	}
	if j.DisplayName, err = p.str(jfDisplayName); err != nil {
		return nil, err
	}
	if j.Description, err = p.str(jfDescription); err != nil {
		return nil, err
	}
	if j.Owner, err = p.str(jfOwner); err != nil {
		return nil, err
	}
	if n, ok, err := p.uint(jfType, "Type", 16); err != nil {
		return nil, err
	} else if ok {
		t := JobType(n)
		j.Type = &t
	}
	n, _, err := p.uint(jfPriority, "Priority", 32)
	if err != nil {
		return nil, err
	}
	j.Priority = Priority(n)
	if n, _, err = p.uint(jfState, "State", 16); err != nil {
		return nil, err
	}
	j.State = State(n)
	n, ok, err := p.uint(jfBytesTotal, "BytesTotal", 64)
	if err != nil {
		return nil, err
	}
	j.BytesTotal = sizeIn(&blk.sizes[0], n, ok)
	if j.BytesTransferred, _, err = p.uint(jfBytesTransferred, "BytesTransferred", 64); err != nil {
		return nil, err
	}
	for _, f := range [...]struct {
		k   int
		dst *uint32
	}{
		{jfFilesTotal, &j.FilesTotal},
		{jfFilesTransferred, &j.FilesTransferred},
		{jfTransientErrorCount, &j.TransientErrorCount},
	} {
		if n, _, err = p.uint(f.k, jobFields[f.k], 32); err != nil {
			return nil, err
		}
		*f.dst = uint32(n)
	}
	for _, f := range [...]struct {
		k   int
		dst *time.Time
	}{
		{jfJobCreationTime, &j.Created},
		{jfJobLastModificationTime, &j.Modified},
		{jfJobCompletionTime, &j.Completed},
	} {
		if n, _, err = p.uint(f.k, jobFields[f.k], 64); err != nil {
			return nil, err
		}
		*f.dst = FiletimeToTime(n)
	}
	for _, f := range [...]struct {
		k   int
		dst *time.Duration
	}{
		{jfMinimumRetryDelay, &j.MinimumRetryDelay},
		{jfNoProgressTimeout, &j.NoProgressTimeout},
	} {
		if n, _, err = p.uint(f.k, jobFields[f.k], 32); err != nil {
			return nil, err
		}
		*f.dst = time.Duration(n) * time.Second
	}
	return blk, nil
}

// addFile decodes the file indexed in p and appends it to the job.
func (blk *jobBlock) addFile(p *fieldIndex) error {
	j := &blk.job
	if j.Files == nil {
		j.Files = blk.file[:0:1]
	}
	j.Files = append(j.Files, File{})
	f := &j.Files[len(j.Files)-1]
	size := &blk.sizes[1]
	if len(j.Files) > 1 {
		size = new(uint64)
	}
	return decodeFile(p, f, size)
}

// decodeFile decodes the BitsClientFile indexed in p into f; size holds
// its BytesTotal when known.
func decodeFile(p *fieldIndex, f *File, size *uint64) error {
	var err error
	if f.RemoteURL, err = p.str(ffRemoteURL); err != nil {
		return err
	}
	if f.LocalFile, err = p.str(ffLocalFile); err != nil {
		return err
	}
	n, ok, err := p.uint(ffBytesTotal, "BytesTotal", 64)
	if err != nil {
		return err
	}
	f.BytesTotal = sizeIn(size, n, ok)
	if f.BytesTransferred, _, err = p.uint(ffBytesTransferred, "BytesTransferred", 64); err != nil {
		return err
	}
	if f.Completed, err = p.bool(ffCompleted, "Completed"); err != nil {
		return err
	}
	return nil
}
