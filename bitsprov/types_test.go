package bitsprov

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
)

// enumCase exercises one enum through uniform closures.
type enumCase struct {
	name  string
	names []string
	str   func(uint64) string
	parse func(string) (uint64, error)
}

func enumCases() []enumCase {
	return []enumCase{
		{"State", []string{"Queued", "Connecting", "Transferring", "Suspended", "Error", "TransientError", "Transferred", "Acknowledged", "Cancelled"},
			func(v uint64) string { return State(v).String() },
			func(s string) (uint64, error) { v, err := ParseState(s); return uint64(v), err }},
		{"Priority", []string{"Foreground", "High", "Normal", "Low"},
			func(v uint64) string { return Priority(v).String() },
			func(s string) (uint64, error) { v, err := ParsePriority(s); return uint64(v), err }},
		{"JobType", []string{"Download", "Upload", "UploadReply"},
			func(v uint64) string { return JobType(v).String() },
			func(s string) (uint64, error) { v, err := ParseJobType(s); return uint64(v), err }},
		{"JobAction", []string{"Cancel", "Complete", "Resume", "Suspend"},
			func(v uint64) string { return JobAction(v).String() },
			func(s string) (uint64, error) { v, err := ParseJobAction(s); return uint64(v), err }},
		{"ServiceAccount", []string{"LocalSystem", "LocalService", "NetworkService"},
			func(v uint64) string { return ServiceAccount(v).String() },
			func(s string) (uint64, error) { v, err := ParseServiceAccount(s); return uint64(v), err }},
		{"ProxyUsage", []string{"Preconfig", "NoProxy", "Override", "AutoDetect"},
			func(v uint64) string { return ProxyUsage(v).String() },
			func(s string) (uint64, error) { v, err := ParseProxyUsage(s); return uint64(v), err }},
		{"CredentialTarget", []string{"Server", "Proxy"},
			func(v uint64) string { return CredentialTarget(v).String() },
			func(s string) (uint64, error) { v, err := ParseCredentialTarget(s); return uint64(v), err }},
		{"CredentialScheme", []string{"Basic", "Digest", "NTLM", "Negotiate", "Passport"},
			func(v uint64) string { return CredentialScheme(v).String() },
			func(s string) (uint64, error) { v, err := ParseCredentialScheme(s); return uint64(v), err }},
		{"ErrorContext", []string{"None", "Unknown", "GeneralQueueManager", "QueueManagerNotification", "LocalFile", "RemoteFile", "GeneralTransport", "RemoteApplication", "ServerCertificateCallback"},
			func(v uint64) string { return ErrorContext(v).String() },
			func(s string) (uint64, error) { v, err := ParseErrorContext(s); return uint64(v), err }},
		{"CertStoreLocation", []string{"CurrentUser", "LocalMachine", "CurrentService", "Services", "Users", "CurrentUserGroupPolicy", "LocalMachineGroupPolicy", "LocalMachineEnterprise"},
			func(v uint64) string { return CertStoreLocation(v).String() },
			func(s string) (uint64, error) { v, err := ParseCertStoreLocation(s); return uint64(v), err }},
	}
}

func TestEnumRoundTrip(t *testing.T) {
	for _, ec := range enumCases() {
		t.Run(ec.name, func(t *testing.T) {
			for i, want := range ec.names {
				v := uint64(i)
				if got := ec.str(v); got != want {
					t.Errorf("String(%d) = %q, want %q", v, got, want)
				}
				for _, in := range []string{want, strconv.Itoa(i), " " + strconv.Itoa(i) + " "} {
					got, err := ec.parse(in)
					if err != nil || got != v {
						t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, v)
					}
				}
				// Case-insensitive, and separators ignored.
				for _, in := range []string{lowerASCII(want), upperASCII(want)} {
					if got, err := ec.parse(in); err != nil || got != v {
						t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, v)
					}
				}
			}
			n := uint64(len(ec.names))
			if got, want := ec.str(n), fmt.Sprintf("%s(%d)", enumWhat(ec.name), n); got != want {
				t.Errorf("String(%d) = %q, want %q", n, got, want)
			}
			if _, err := ec.parse(strconv.FormatUint(n, 10)); err == nil {
				t.Errorf("Parse(%d) succeeded", n)
			} else if want := fmt.Sprintf("bitsprov: %s %d out of range (0-%d)", enumWhat(ec.name), n, n-1); err.Error() != want {
				t.Errorf("Parse(%d) error = %q, want %q", n, err, want)
			}
			for _, bad := range []string{"", "bogus", "-1", "1.5"} {
				if _, err := ec.parse(bad); err == nil {
					t.Errorf("Parse(%q) succeeded", bad)
				}
			}
		})
	}
}

func enumWhat(typ string) string {
	return map[string]string{
		"State": "state", "Priority": "priority", "JobType": "job type", "JobAction": "job action",
		"ServiceAccount": "service account", "ProxyUsage": "proxy usage", "CredentialTarget": "credential target",
		"CredentialScheme": "credential scheme", "ErrorContext": "error context", "CertStoreLocation": "certificate store location",
	}[typ]
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

func TestParseAliases(t *testing.T) {
	tests := []struct {
		in   string
		got  func(string) (uint64, error)
		want uint64
	}{
		{"Transient_Error", func(s string) (uint64, error) { v, err := ParseState(s); return uint64(v), err }, 5},
		{"TRANSIENT_ERROR", func(s string) (uint64, error) { v, err := ParseState(s); return uint64(v), err }, 5},
		{"Canceled", func(s string) (uint64, error) { v, err := ParseState(s); return uint64(v), err }, 8},
		{"BG_JOB_STATE_TRANSFERRED", func(s string) (uint64, error) { v, err := ParseState(s); return uint64(v), err }, 6},
		{"transient-error", func(s string) (uint64, error) { v, err := ParseState(s); return uint64(v), err }, 5},
		{"BG_JOB_PRIORITY_LOW", func(s string) (uint64, error) { v, err := ParsePriority(s); return uint64(v), err }, 3},
		{"upload-reply", func(s string) (uint64, error) { v, err := ParseJobType(s); return uint64(v), err }, 2},
		{"SystemDefault", func(s string) (uint64, error) { v, err := ParseProxyUsage(s); return uint64(v), err }, 0},
		{"BG_JOB_PROXY_USAGE_AUTODETECT", func(s string) (uint64, error) { v, err := ParseProxyUsage(s); return uint64(v), err }, 3},
		{"BG_AUTH_SCHEME_NEGOTIATE", func(s string) (uint64, error) { v, err := ParseCredentialScheme(s); return uint64(v), err }, 3},
		{"NT AUTHORITY\\NetworkService", func(s string) (uint64, error) { v, err := ParseServiceAccount(s); return uint64(v), err }, 2},
		{"BG_CERT_STORE_LOCATION_LOCAL_MACHINE_ENTERPRISE", func(s string) (uint64, error) { v, err := ParseCertStoreLocation(s); return uint64(v), err }, 7},
		{"BG_ERROR_CONTEXT_REMOTE_FILE", func(s string) (uint64, error) { v, err := ParseErrorContext(s); return uint64(v), err }, 5},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := tt.got(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("= %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestParseUnknownNamesTheValue(t *testing.T) {
	_, err := ParseState("Finished")
	want := `bitsprov: unknown state "Finished" (want one of Queued, Connecting, Transferring, Suspended, Error, TransientError, Transferred, Acknowledged, Cancelled, or a number 0-8)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestStateHelpers(t *testing.T) {
	for s := State(0); s <= 9; s++ {
		final := s == StateAcknowledged || s == StateCancelled
		active := s == StateQueued || s == StateConnecting || s == StateTransferring || s == StateTransientError
		if s.Final() != final || s.Active() != active {
			t.Errorf("%v: Final=%v Active=%v, want %v %v", s, s.Final(), s.Active(), final, active)
		}
	}
	if got := CredentialTarget(TargetProxy).COMValue(); got != 2 {
		t.Errorf("Proxy COMValue = %d, want 2", got)
	}
	if got := SchemePassport.COMValue(); got != 5 {
		t.Errorf("Passport COMValue = %d, want 5", got)
	}
}

func TestFiletime(t *testing.T) {
	tests := []struct {
		ft   uint64
		want time.Time
	}{
		{116444736000000000, time.Unix(0, 0).UTC()},
		// 2009-07-13T23:59:59.1234567Z: 1247529599 s after the Unix epoch.
		{116444736000000000 + 1247529599*10000000 + 1234567, time.Date(2009, 7, 13, 23, 59, 59, 123456700, time.UTC)},
		{1, time.Date(1601, 1, 1, 0, 0, 0, 100, time.UTC)},
		{116444735999999999, time.Date(1969, 12, 31, 23, 59, 59, 999999900, time.UTC)},
		{0, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatUint(tt.ft, 10), func(t *testing.T) {
			got := FiletimeToTime(tt.ft)
			if !got.Equal(tt.want) || got.IsZero() != tt.want.IsZero() {
				t.Fatalf("FiletimeToTime = %v, want %v", got, tt.want)
			}
			if back := TimeToFiletime(got); back != tt.ft {
				t.Fatalf("TimeToFiletime = %d, want %d", back, tt.ft)
			}
		})
	}
	if got := TimeToFiletime(time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)); got != 0 {
		t.Errorf("before 1601 = %d, want 0", got)
	}
	// Truncation to the tick.
	if got := TimeToFiletime(time.Unix(0, 199).UTC()); got != 116444736000000001 {
		t.Errorf("truncation = %d", got)
	}
	// The largest FILETIME decodes without overflow (year 60056).
	if got := FiletimeToTime(SizeUnknown).Year(); got != 60056 {
		t.Errorf("max FILETIME year = %d", got)
	}
}

func text(name, v string) wsman.Property {
	return wsman.Property{Name: name, Values: []wsman.Value{{Kind: wsman.KindText, Text: v}}}
}

func fileObj(remote, local, total, done, completed string) wsman.Value {
	return wsman.Value{Kind: wsman.KindObject, Object: &wsman.Instance{
		ClassName:   "BitsClientFile",
		ResourceURI: "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientFile",
		TypeName:    "BitsClientFile_Type",
		Props: []wsman.Property{
			text("RemoteUrl", remote), text("LocalFile", local),
			text("BytesTotal", total), text("BytesTransferred", done), text("Completed", completed),
		},
	}}
}

func sampleInstance() *wsman.Instance {
	return &wsman.Instance{
		ClassName:   "BitsClientJob",
		ResourceURI: ResourceURI,
		Props: []wsman.Property{
			text("BytesTotal", "18446744073709551615"),
			text("bytesTransferred", "1024"),
			text("Description", "a & b <c>"),
			text("DisplayName", "TestJob"),
			{Name: "Files", Values: []wsman.Value{
				fileObj("https://srv/a.bin", `C:\dl\a.bin`, "2048", "1024", "false"),
				fileObj("https://srv/b.bin", `C:\dl\b.bin`, "18446744073709551615", "0", "FALSE"),
			}},
			text("FilesTotal", "2"),
			text("FilesTransferred", "0"),
			text("JobCompletionTime", "0"),
			text("JobCreationTime", "116444736000000000"),
			text("JOBID", "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}"),
			text("JobLastModificationTime", "116444736010000000"),
			text("MinimumRetryDelay", "600"),
			text("NoProgressTimeout", "1209600"),
			{Name: "Owner", Values: []wsman.Value{{Kind: wsman.KindNil}}},
			text("Priority", "2"),
			text("State", "5"),
			text("TransientErrorCount", "3"),
		},
	}
}

// prop finds a property by name (case-insensitively) for patching.
func prop(in *wsman.Instance, name string) *wsman.Property {
	for i := range in.Props {
		if strings.EqualFold(in.Props[i].Name, name) {
			return &in.Props[i]
		}
	}
	panic("test instance has no " + name)
}

func u64(v uint64) *uint64 { return &v }

func TestJobFromInstance(t *testing.T) {
	got, err := JobFromInstance(sampleInstance())
	if err != nil {
		t.Fatal(err)
	}
	want := &Job{
		JobID:       "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}",
		DisplayName: "TestJob",
		Description: "a & b <c>",
		Priority:    PriorityNormal,
		State:       StateTransientError,
		Files: []File{
			{RemoteURL: "https://srv/a.bin", LocalFile: `C:\dl\a.bin`, BytesTotal: u64(2048), BytesTransferred: 1024},
			{RemoteURL: "https://srv/b.bin", LocalFile: `C:\dl\b.bin`},
		},
		BytesTransferred:    1024,
		FilesTotal:          2,
		Created:             time.Unix(0, 0).UTC(),
		Modified:            time.Unix(1, 0).UTC(),
		MinimumRetryDelay:   600 * time.Second,
		NoProgressTimeout:   14 * 24 * time.Hour,
		TransientErrorCount: 3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("JobFromInstance (-want +got):\n%s", diff)
	}
	if got.BytesTotalKnown() || !got.Files[0].BytesTotalKnown() || got.Files[1].BytesTotalKnown() {
		t.Error("BytesTotalKnown wrong")
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"jobId":"{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}","displayName":"TestJob","description":"a \u0026 b \u003cc\u003e","type":null,"priority":"Normal","state":"TransientError","owner":"",` +
		`"files":[{"remoteUrl":"https://srv/a.bin","localFile":"C:\\dl\\a.bin","bytesTotal":2048,"bytesTransferred":1024,"completed":false},{"remoteUrl":"https://srv/b.bin","localFile":"C:\\dl\\b.bin","bytesTotal":null,"bytesTransferred":0,"completed":false}],` +
		`"bytesTotal":null,"bytesTransferred":1024,"filesTotal":2,"filesTransferred":0,"transientErrorCount":3,"stateCode":5,"created":"1970-01-01T00:00:00Z","modified":"1970-01-01T00:00:01Z","completed":null,"minimumRetryDelay":600,"noProgressTimeout":1209600}`
	if string(b) != wantJSON {
		t.Fatalf("JSON:\n got %s\nwant %s", b, wantJSON)
	}
}

func TestJobFromInstanceErrors(t *testing.T) {
	tests := []struct {
		name  string
		patch func(*wsman.Instance)
		want  string
	}{
		{"no JobId", func(in *wsman.Instance) { *prop(in, "JobId") = text("Other", "x") }, "bitsprov: decode job: BitsClientJob has no JobId"},
		{"bad state", func(in *wsman.Instance) { *prop(in, "State") = text("State", "70000") }, `bitsprov: decode job: BitsClientJob.State: "70000" is not a uint16`},
		{"bad completed", func(in *wsman.Instance) {
			*prop(prop(in, "Files").Values[1].Object, "Completed") = text("Completed", "yes")
		}, `bitsprov: decode job: BitsClientFile.Completed: "yes" is not a boolean`},
		{"array state", func(in *wsman.Instance) {
			st := prop(in, "State")
			st.Values = append(st.Values, st.Values[0])
		}, "bitsprov: decode job: BitsClientJob.State: 2 values where one was expected"},
		{"files not objects", func(in *wsman.Instance) { *prop(in, "Files") = text("Files", "x") }, "bitsprov: decode job: BitsClientJob.Files: not an embedded object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := sampleInstance()
			tt.patch(in)
			_, err := JobFromInstance(in)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %s", err, tt.want)
			}
		})
	}
	if _, err := JobFromInstance(nil); err == nil {
		t.Error("nil instance accepted")
	}
}

func TestLookupCode(t *testing.T) {
	tests := []struct {
		code          uint32
		name, meaning string
		ok            bool
	}{
		{0x80200002, "BG_E_INVALID_STATE", "action not allowed in the current job state", true},
		{0x00200017, "BG_S_PARTIAL_COMPLETE", "job completed, but only some files were transferred; the rest were deleted", true},
		{0x80041010, "WBEM_E_INVALID_CLASS", "WMI class does not exist (is the BITS Compact Server feature installed?)", true},
		{0x80070057, "E_INVALIDARG", "invalid argument", true},
		{0x80190194, "BG_E_HTTP_ERROR_404", "server returned HTTP 404 not found", true},
		{0x801901AD, "BG_E_HTTP_ERROR_429", "server returned HTTP 429 HTTP status 429", true},
		{0x80190000, "", "", false},
		{0x12345678, "", "", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%08X", tt.code), func(t *testing.T) {
			n, m, ok := LookupCode(tt.code)
			if n != tt.name || m != tt.meaning || ok != tt.ok {
				t.Fatalf("= %q, %q, %v", n, m, ok)
			}
		})
	}
	if HTTPCode(404) != 0x80190194 {
		t.Errorf("HTTPCode(404) = %v", HTTPCode(404))
	}
}

func TestReturnError(t *testing.T) {
	tests := []struct {
		err  *ReturnError
		want string
		is   []error
		not  []error
	}{
		{&ReturnError{Host: "srv1:5985", Method: "SetJobState", JobID: "{GUID}", Code: 0x80200002},
			"srv1:5985: SetJobState on {GUID}: BG_E_INVALID_STATE (0x80200002): action not allowed in the current job state",
			[]error{ErrInvalidState, CodeInvalidState}, []error{ErrEmpty, ErrNotFound}},
		{&ReturnError{Host: "srv1", Method: "CreateJob", Code: 0x80041010},
			"srv1: CreateJob: WBEM_E_INVALID_CLASS (0x80041010): WMI class does not exist (is the BITS Compact Server feature installed?)",
			[]error{ErrProviderMissing}, []error{ErrNotFound}},
		{&ReturnError{Host: "srv1", Method: "GetError", JobID: "{G}", Code: 0x80200001},
			"srv1: GetError on {G}: BG_E_NOT_FOUND (0x80200001): job not found",
			[]error{ErrNotFound}, []error{ErrInvalidState}},
		{&ReturnError{Host: "srv1", Method: "AddFile", JobID: "{G}", Code: 21},
			"srv1: AddFile on {G}: returned 0x00000015 (21)", nil, []error{ErrNotFound}},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var err error = fmt.Errorf("wrapped: %w", tt.err)
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q", got)
			}
			for _, s := range tt.is {
				if !errors.Is(err, s) {
					t.Errorf("not errors.Is %v", s)
				}
			}
			for _, s := range tt.not {
				if errors.Is(err, s) {
					t.Errorf("errors.Is %v", s)
				}
			}
		})
	}
	if got := CodeEmpty.Error(); got != "BG_E_EMPTY (0x80200003): job has no files" {
		t.Errorf("Code.Error = %q", got)
	}
	if CodePartialComplete.Failed() || !CodeEmpty.Failed() {
		t.Error("Failed wrong")
	}
}

// TestSameNameIsEqualFold: the first-byte shortcut never changes what
// strings.EqualFold says, for ASCII names in any case and for the
// non-ASCII letters that fold onto ASCII ones (Kelvin sign, long s).
func TestSameNameIsEqualFold(t *testing.T) {
	names := []string{"", "JobId", "jobid", "JOBID", "JobIdx", "Owner", "owner", "_x", "@a", "`a", "[a", "{a",
		"\u212Aey", "Key", "key", "\u017Fize", "Size", "size", "é", "É", "0", "1"}
	for _, a := range names {
		for _, b := range names {
			if got, want := sameName(a, b), strings.EqualFold(a, b); got != want {
				t.Errorf("sameName(%q, %q) = %v, want %v", a, b, got, want)
			}
		}
	}
}

// TestJobFromInstanceNameMatching pins the lookup rules of JobFromInstance's
// one-pass field search: names match as strings.EqualFold does (so a
// non-ASCII name that folds to an ASCII one still matches, as WMI's
// case-insensitive names would), and the first of two names that differ
// only in case wins.
func TestJobFromInstanceNameMatching(t *testing.T) {
	in := sampleInstance()
	// U+017F LATIN SMALL LETTER LONG S folds to 's'.
	prop(in, "State").Name = "\u017ftate"
	prop(in, "State").Values[0].Text = "6"
	in.Props = append(in.Props, text("displayname", "second"), text("DISPLAYNAME", "third"))
	got, err := JobFromInstance(in)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateTransferred {
		t.Errorf("State from %q = %v, want Transferred", "\u017ftate", got.State)
	}
	if got.DisplayName != "TestJob" {
		t.Errorf("DisplayName = %q, want the first of the case-insensitive duplicates, %q", got.DisplayName, "TestJob")
	}
}

// TestParseUintIsStrconv: parseUint accepts and refuses exactly what
// strconv.ParseUint(strings.TrimSpace(s), 10, bits) does, and gives the
// same value.
func TestParseUintIsStrconv(t *testing.T) {
	cases := []string{"", " ", "0", "1", "00000000000000000000000000001", "65535", "65536", "4294967295", "4294967296",
		"18446744073709551615", "18446744073709551616", "18446744073709551619", "18446744073709551620", "99999999999999999999",
		"184467440737095516150", "9999999999999999999", "10000000000000000000", "0000000000000000000018446744073709551615", " 7", "7 ", "\t7\n", "\u00a07\u2003", "+1", "-1", "0x10", "1_000", "1e3", "١", "7\x00", "1 2"}
	for _, s := range cases {
		for _, bits := range []int{16, 32, 64} {
			want, err := strconv.ParseUint(strings.TrimSpace(s), 10, bits)
			got, ok := parseUint(s, bits)
			if ok != (err == nil) || (ok && got != want) {
				t.Errorf("parseUint(%q, %d) = %d, %v; strconv says %d, %v", s, bits, got, ok, want, err)
			}
		}
	}
}

func FuzzParseUintIsStrconv(f *testing.F) {
	for _, s := range []string{"18446744073709551615", "65536", " 1 ", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, bits := range []int{16, 32, 64} {
			want, err := strconv.ParseUint(strings.TrimSpace(s), 10, bits)
			got, ok := parseUint(s, bits)
			if ok != (err == nil) || (ok && got != want) {
				t.Fatalf("parseUint(%q, %d) = %d, %v; strconv says %d, %v", s, bits, got, ok, want, err)
			}
		}
	})
}

// TestJobFromInstanceFileSizes: every file's size is its own, however
// many files a job has (the first shares the job's allocation).
func TestJobFromInstanceFileSizes(t *testing.T) {
	in := sampleInstance()
	*prop(in, "BytesTotal") = text("BytesTotal", "7")
	files := prop(in, "Files")
	files.Values = append(files.Values, wsman.Value{Kind: wsman.KindNil},
		fileObj("https://srv/c.bin", `C:\dl\c.bin`, "3", "3", "true"), wsman.Value{Kind: wsman.KindObject})
	got, err := JobFromInstance(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{RemoteURL: "https://srv/a.bin", LocalFile: `C:\dl\a.bin`, BytesTotal: u64(2048), BytesTransferred: 1024},
		{RemoteURL: "https://srv/b.bin", LocalFile: `C:\dl\b.bin`},
		{RemoteURL: "https://srv/c.bin", LocalFile: `C:\dl\c.bin`, BytesTotal: u64(3), BytesTransferred: 3, Completed: true},
	}
	if diff := cmp.Diff(want, got.Files); diff != "" {
		t.Fatalf("Files (-want +got):\n%s", diff)
	}
	if got.BytesTotal == nil || *got.BytesTotal != 7 {
		t.Fatalf("BytesTotal = %v, want 7", got.BytesTotal)
	}
	*got.Files[2].BytesTotal = 30
	if *got.BytesTotal != 7 || *got.Files[0].BytesTotal != 2048 {
		t.Errorf("sizes share memory: job %d, first file %d", *got.BytesTotal, *got.Files[0].BytesTotal)
	}
	// A job without files has nil Files, as before (JSON: null).
	*prop(in, "Files") = wsman.Property{Name: "Files", Values: []wsman.Value{{Kind: wsman.KindNil}}}
	if got, err := JobFromInstance(in); err != nil || got.Files != nil {
		t.Errorf("no files: Files = %#v, %v; want nil", got.Files, err)
	}
}

// TestJobFromInstanceFilesCheckedFirst: a Files array holding anything
// but objects is refused as such, before any file is decoded.
func TestJobFromInstanceFilesCheckedFirst(t *testing.T) {
	in := sampleInstance()
	files := prop(in, "Files")
	*prop(files.Values[0].Object, "Completed") = text("Completed", "yes")
	files.Values = append(files.Values, text("x", "y").Values[0])
	_, err := JobFromInstance(in)
	if want := "bitsprov: decode job: BitsClientJob.Files: not an embedded object"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}
