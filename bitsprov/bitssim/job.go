package bitssim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
)

const (
	// namespaceURI is the WMI namespace root\microsoft\bits as a resource URI prefix.
	namespaceURI = wsman.ResourceWMI + "/root/microsoft/bits"
	// ResourceURI is the class this provider serves.
	ResourceURI = namespaceURI + "/BitsClientJob"
	// FileResourceURI is the class of the embedded Files objects.
	FileResourceURI = namespaceURI + "/BitsClientFile"

	// sizeUnknown is BG_SIZE_UNKNOWN, shown while a size is not known.
	sizeUnknown = math.MaxUint64

	// Defaults of a new BITS job (SetMinimumRetryDelay and
	// SetNoProgressTimeout pages).
	defaultRetryDelay        = 600
	defaultNoProgressTimeout = 1209600
	minRetryDelay            = 5
)

// owners are the accounts CreateJob's ServiceAccount selects, as the Owner
// property shows them.
var owners = map[bitsprov.ServiceAccount]string{
	bitsprov.AccountLocalSystem:    `NT AUTHORITY\SYSTEM`,
	bitsprov.AccountLocalService:   `NT AUTHORITY\LOCAL SERVICE`,
	bitsprov.AccountNetworkService: `NT AUTHORITY\NETWORK SERVICE`,
}

// job is one simulated BITS job. Fields are guarded by Provider.mu; op
// serialises the operations that change the state from outside (methods,
// Put) so that one can wait for a transfer to stop without holding mu.
type job struct {
	op sync.Mutex

	id          string
	seq         uint64
	displayName string
	description string
	typ         bitsprov.JobType
	priority    bitsprov.Priority
	state       bitsprov.State
	account     bitsprov.ServiceAccount
	files       []*file

	created, modified, completed time.Time
	retryDelay                   uint32
	noProgressTimeout            uint32
	transientErrors              uint32

	// err is the error that put the job in Error or TransientError.
	err *jobError
	// progressAt is when the job last made progress or was resumed; the
	// NoProgressTimeout counts from it.
	progressAt time.Time
	// gen changes on every state change made from outside, so that a
	// pending retry or a finishing transfer can tell it is stale.
	gen uint64
	// run is the transfer in progress, if any.
	run *run
	// lastRun is the most recent run, which a new run waits for.
	lastRun *run
	// session is the upload session id, kept across retries.
	session string

	creds      map[[2]uint16][2]string
	proxyUsage bitsprov.ProxyUsage
	proxyList  string
	bypassList string
	certStore  string
}

// file is one file of a job.
type file struct {
	remoteURL   string
	localFile   string
	total       uint64
	transferred uint64
	completed   bool
	// path is LocalFile on this machine ("" if it maps to nothing).
	path string
	// tmp is where a download is written until Complete renames it.
	tmp string
}

// jobError is what GetError reports.
type jobError struct {
	context bitsprov.ErrorContext
	code    uint32
	// transient errors are retried after MinimumRetryDelay.
	transient bool
}

func (e *jobError) Error() string {
	return fmt.Sprintf("0x%08X (%s): %s", e.code, e.context, describe(e.code))
}

// newGUID returns a random GUID in the braced upper-case form the provider
// uses for JobId ("{327C1E84-ABC3-475D-A5D3-E7ED09806523}").
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := strings.ToUpper(hex.EncodeToString(b[:]))
	return "{" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:] + "}"
}

// fileTime is the FILETIME the provider shows for t (0 for the zero time).
func fileTime(t time.Time) uint64 { return bitsprov.TimeToFiletime(t) }

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// bytesTotal is the job's BytesTotal: unknown while any file's size is.
func (j *job) bytesTotal() uint64 {
	var n uint64
	for _, f := range j.files {
		if f.total == sizeUnknown {
			return sizeUnknown
		}
		n += f.total
	}
	return n
}

func (j *job) bytesTransferred() uint64 {
	var n uint64
	for _, f := range j.files {
		n += f.transferred
	}
	return n
}

func (j *job) filesTransferred() uint32 {
	var n uint32
	for _, f := range j.files {
		if f.completed {
			n++
		}
	}
	return n
}

// instance renders the job as the provider's BitsClientJob: properties in
// alphabetical order as WMI sends them (spec/wsman-wire.md §1.7), uint64
// values as decimal text, times as FILETIME.
//
// Files is unverified: no capture of an embedded-object array property
// exists. We render it as DSP0230 maps embedded objects and as the one real
// embedded object seen (__ExtendedStatus in a fault): one p:Files element
// per file, each holding a BitsClientFile in its own namespace with
// xsi:type="p:BitsClientFile_Type"; an empty list is one xsi:nil element
// (the rule for a NULL array, MS-WSMV 3.1.4.1.26).
func (j *job) instance() *wsman.Instance {
	var files []wsman.Value
	for _, f := range j.files {
		files = append(files, wsman.Value{Kind: wsman.KindObject, Object: f.instance()})
	}
	if len(files) == 0 {
		files = []wsman.Value{{Kind: wsman.KindNil}}
	}
	return &wsman.Instance{
		ClassName:   "BitsClientJob",
		ResourceURI: ResourceURI,
		TypeName:    "BitsClientJob_Type",
		Props: []wsman.Property{
			textProp("BytesTotal", u64(j.bytesTotal())),
			textProp("BytesTransferred", u64(j.bytesTransferred())),
			textProp("Description", j.description),
			textProp("DisplayName", j.displayName),
			{Name: "Files", Values: files},
			textProp("FilesTotal", u64(uint64(len(j.files)))),
			textProp("FilesTransferred", u64(uint64(j.filesTransferred()))),
			textProp("JobCompletionTime", u64(fileTime(j.completed))),
			textProp("JobCreationTime", u64(fileTime(j.created))),
			textProp("JobId", j.id),
			textProp("JobLastModificationTime", u64(fileTime(j.modified))),
			textProp("MinimumRetryDelay", u64(uint64(j.retryDelay))),
			textProp("NoProgressTimeout", u64(uint64(j.noProgressTimeout))),
			textProp("Owner", owners[j.account]),
			textProp("Priority", u64(uint64(j.priority))),
			textProp("State", u64(uint64(j.state))),
			textProp("TransientErrorCount", u64(uint64(j.transientErrors))),
		},
	}
}

// instance renders a BitsClientFile (all properties read-only).
func (f *file) instance() *wsman.Instance {
	return &wsman.Instance{
		ClassName:   "BitsClientFile",
		ResourceURI: FileResourceURI,
		TypeName:    "BitsClientFile_Type",
		Props: []wsman.Property{
			textProp("BytesTotal", u64(f.total)),
			textProp("BytesTransferred", u64(f.transferred)),
			textProp("Completed", strconv.FormatBool(f.completed)),
			textProp("LocalFile", f.localFile),
			textProp("RemoteUrl", f.remoteURL),
		},
	}
}
