package bitssim

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// fixedClock is a Clock stopped at one instant.
type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                         { return c.t }
func (c fixedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func TestRenderNewJob(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	p := newTestProvider(t, Config{Clock: fixedClock{at}})
	id := create(t, p, "DisplayName", "Nightly & <sync>", "RemoteUrl", "http://files.example/a.bin",
		"LocalFile", `C:\data\a.bin`, "Description", "d")
	if len(id) != 38 || id[0] != '{' || id != strings.ToUpper(id) {
		t.Fatalf("JobId %q is not an upper-case braced GUID", id)
	}
	got := get(t, p, id)
	ft := strconv.FormatUint(uint64(at.UnixNano()/100+116444736000000000), 10)
	tp := func(n, v string) wsman.Property { return textProp(n, v) }
	fileObj := &wsman.Instance{
		ClassName: "BitsClientFile", ResourceURI: FileResourceURI, TypeName: "BitsClientFile_Type",
		Props: []wsman.Property{tp("BytesTotal", "18446744073709551615"), tp("BytesTransferred", "0"),
			tp("Completed", "false"), tp("LocalFile", `C:\data\a.bin`), tp("RemoteUrl", "http://files.example/a.bin")},
	}
	want := &wsman.Instance{
		ClassName: "BitsClientJob", ResourceURI: ResourceURI, TypeName: "BitsClientJob_Type",
		Props: []wsman.Property{
			tp("BytesTotal", "18446744073709551615"), tp("BytesTransferred", "0"),
			tp("Description", "d"), tp("DisplayName", "Nightly & <sync>"),
			{Name: "Files", Values: []wsman.Value{{Kind: wsman.KindObject, Object: fileObj}}},
			tp("FilesTotal", "1"), tp("FilesTransferred", "0"),
			tp("JobCompletionTime", "0"), tp("JobCreationTime", ft), tp("JobId", id),
			tp("JobLastModificationTime", ft), tp("MinimumRetryDelay", "600"),
			tp("NoProgressTimeout", "1209600"), tp("Owner", `NT AUTHORITY\NETWORK SERVICE`),
			tp("Priority", "2"), tp("State", "3"), tp("TransientErrorCount", "0"),
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("instance (-want +got):\n%s", d)
	}
	// ServiceAccount selects the owner.
	out := invoke(t, p, "", "CreateJob", "DisplayName", "x", "ServiceAccount", "0", "Suspend", "true")
	if o := prop(t, get(t, p, prop(t, out, "JobId")), "Owner"); o != `NT AUTHORITY\SYSTEM` {
		t.Fatalf("Owner %q for ServiceAccount 0", o)
	}
	// An empty job shows Files as NULL.
	if f := findProp(get(t, p, prop(t, out, "JobId")), "Files"); len(f.Values) != 1 || f.Values[0].Kind != wsman.KindNil {
		t.Fatalf("Files of an empty job: %+v", f.Values)
	}
}

func TestGetSelectors(t *testing.T) {
	p := newTestProvider(t, Config{})
	id := create(t, p, "DisplayName", "s", "RemoteUrl", "http://h/a", "LocalFile", "/tmp/a")
	ctx := context.Background()
	t.Run("case-insensitive name and value", func(t *testing.T) {
		r := req("", "")
		r.Selectors = []wsman.Selector{{Name: "jobid", Value: strings.ToLower(id)}}
		if _, err := p.Get(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name    string
		sel     []wsman.Selector
		subcode string
		code    uint32
		detail  string
	}{
		{"missing", nil, "InvalidSelectors", 0x8033805A, wsman.FaultDetailBase + "InsufficientSelectors"},
		{"extra", []wsman.Selector{{Name: "JobId", Value: id}, {Name: "Name", Value: "x"}}, "InvalidSelectors", 0x8033805B, wsman.FaultDetailBase + "UnexpectedSelectors"},
		{"wrong name", []wsman.Selector{{Name: "Id", Value: id}}, "InvalidSelectors", 0x8033805B, wsman.FaultDetailBase + "UnexpectedSelectors"},
		{"unknown job", []wsman.Selector{{Name: "JobId", Value: "{00000000-0000-0000-0000-000000000000}"}}, "DestinationUnreachable", 2150858752, wsman.FaultDetailBase + "ResourceNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := req("", "")
			r.Selectors = tc.sel
			_, err := p.Get(ctx, r)
			f := fault(t, err, tc.subcode, tc.code)
			if f.Detail != tc.detail {
				t.Errorf("Detail %q, want %q", f.Detail, tc.detail)
			}
			if tc.subcode == "DestinationUnreachable" {
				if f.Code != "Sender" || f.SubcodeNS != wsman.NsAddressing {
					t.Errorf("fault %+v", f)
				}
				if f.WMIError == nil || prop(t, f.WMIError, "StatusCode") != "2147749890" {
					t.Errorf("WMI detail %+v, want StatusCode WBEM_E_NOT_FOUND", f.WMIError)
				}
				if !wsman.IsNotFound(err) {
					t.Error("IsNotFound is false")
				}
			}
		})
	}
}

func TestPut(t *testing.T) {
	p := newTestProvider(t, Config{})
	id := create(t, p, "DisplayName", "p", "RemoteUrl", "http://h/a", "LocalFile", "/tmp/a")
	ctx := context.Background()
	put := func(patch map[string]string) (*wsman.Instance, error) {
		in := get(t, p, id)
		for k, v := range patch {
			findProp(in, k).Values[0].Text = v
		}
		return p.Put(ctx, req(id, ""), in)
	}
	t.Run("whole instance back unchanged", func(t *testing.T) {
		if _, err := put(nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("writable properties", func(t *testing.T) {
		out, err := put(map[string]string{"Priority": "0", "DisplayName": "renamed", "Description": "new",
			"MinimumRetryDelay": "1", "NoProgressTimeout": "30"})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{"Priority": "0", "DisplayName": "renamed", "Description": "new",
			"MinimumRetryDelay": "5", "NoProgressTimeout": "30"} {
			if got := prop(t, out, k); got != v {
				t.Errorf("%s = %s, want %s", k, got, v)
			}
			if got := prop(t, get(t, p, id), k); got != v {
				t.Errorf("after Get: %s = %s, want %s", k, got, v)
			}
		}
	})
	for _, tc := range []struct {
		name    string
		patch   map[string]string
		subcode string
		code    uint32
	}{
		{"another JobId", map[string]string{"JobId": "{11111111-1111-1111-1111-111111111111}"}, "InternalError", wbemReadOnly},
		{"another JobId with a writable change", map[string]string{"JobId": "{11111111-1111-1111-1111-111111111111}", "Priority": "3"}, "InternalError", wbemReadOnly},
		{"priority 7", map[string]string{"Priority": "7"}, "InternalError", eInvalidArg},
		{"priority not a number", map[string]string{"Priority": "high"}, "InvalidParameter", wbemTypeMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := put(tc.patch)
			fault(t, err, tc.subcode, tc.code)
			if got := prop(t, get(t, p, id), "Priority"); got != "0" {
				t.Errorf("Priority changed to %s by a refused Put", got)
			}
		})
	}
	t.Run("JobId refusal text", func(t *testing.T) {
		_, err := put(map[string]string{"JobId": "{11111111-1111-1111-1111-111111111111}"})
		f := fault(t, err, "InternalError", wbemReadOnly)
		if f.ProviderFault == nil || f.ProviderFault.Text != "The property JobId is read-only." {
			t.Errorf("provider fault = %+v", f.ProviderFault)
		}
	})
	t.Run("unknown property", func(t *testing.T) {
		in := get(t, p, id)
		in.Props = append(in.Props, textProp("Bogus", "1"))
		_, err := p.Put(ctx, req(id, ""), in)
		fault(t, err, "InvalidParameter", wbemInvalidParameter)
	})
	t.Run("cancelled job", func(t *testing.T) {
		in := get(t, p, id)
		rv(t, p, id, "SetJobState", "JobState", "0")
		_, err := p.Put(ctx, req(id, ""), in)
		fault(t, err, "DestinationUnreachable", wsman.CodeResourceNotFound)
	})
}

// TestPutReadOnly checks the one rule for read-only properties: whatever
// value a Put carries for them is ignored (Set-WSManInstance Puts back
// what it read, and counters and State move meanwhile), and only the key
// JobId must still name the selected job.
func TestPutReadOnly(t *testing.T) {
	p := newTestProvider(t, Config{})
	id := create(t, p, "DisplayName", "p", "RemoteUrl", "http://h/a", "LocalFile", "/tmp/a")
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		patch map[string]string
	}{
		{"State", map[string]string{"State": "6"}},
		{"BytesTransferred", map[string]string{"BytesTransferred": "12345"}},
		{"Owner", map[string]string{"Owner": `NT AUTHORITY\SYSTEM`}},
		{"JobCreationTime", map[string]string{"JobCreationTime": "1"}},
		{"JobId in other case", map[string]string{"JobId": strings.ToLower(id)}},
		{"State with a writable change", map[string]string{"State": "6", "Description": "kept"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := get(t, p, id)
			in := get(t, p, id)
			for k, v := range tc.patch {
				findProp(in, k).Values[0].Text = v
			}
			out, err := p.Put(ctx, req(id, ""), in)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			after := get(t, p, id)
			for _, got := range []*wsman.Instance{out, after} {
				for k := range tc.patch {
					want := prop(t, before, k)
					if k == "Description" {
						want = tc.patch[k]
					}
					if g := prop(t, got, k); g != want {
						t.Errorf("%s = %q, want %q", k, g, want)
					}
				}
			}
		})
	}
}

func TestEnumerate(t *testing.T) {
	p := newTestProvider(t, Config{})
	a := create(t, p, "DisplayName", "a", "RemoteUrl", "http://h/a", "LocalFile", "/tmp/a")
	b := create(t, p, "DisplayName", "b", "RemoteUrl", "http://h/b", "LocalFile", "/tmp/b")
	c := create(t, p, "DisplayName", "c", "RemoteUrl", "http://h/c", "LocalFile", "/tmp/c")
	d := create(t, p, "DisplayName", "d")
	rv(t, p, b, "SetJobState", "JobState", "0") // cancelled: leaves the queue
	rv(t, p, c, "SetJobState", "JobState", "1") // acknowledged: leaves the queue
	// WQL filters are the server's (TestWQLWhereOverTheWire); the
	// provider lists the queue and applies a selector filter.
	ids := func(sel ...wsman.Selector) []string {
		t.Helper()
		items, err := p.Enumerate(context.Background(), &wsmantest.EnumerateRequest{Request: req("", ""), SelectorFilter: sel})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, in := range items {
			out = append(out, prop(t, in, "JobId"))
		}
		return out
	}
	for _, tc := range []struct {
		name string
		sel  []wsman.Selector
		want []string
	}{
		{"all", nil, []string{a, d}},
		{"selector", []wsman.Selector{{Name: "JobId", Value: strings.ToLower(d)}}, []string{d}},
		{"selector of a job gone", []wsman.Selector{{Name: "JobId", Value: b}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(tc.sel...); !cmp.Equal(got, tc.want) {
				t.Fatalf("jobs %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("unknown selector", func(t *testing.T) {
		_, err := p.Enumerate(context.Background(), &wsmantest.EnumerateRequest{Request: req("", ""), SelectorFilter: []wsman.Selector{{Name: "State", Value: "3"}}})
		fault(t, err, "CannotProcessFilter", wsman.CodeCannotProcess)
	})
}

func TestReturnValues(t *testing.T) {
	p := newTestProvider(t, Config{})
	dl := func() string {
		return create(t, p, "DisplayName", "j", "RemoteUrl", "http://127.0.0.1:1/a", "LocalFile", filepath.Join(t.TempDir(), "a"))
	}
	empty := create(t, p, "DisplayName", "empty")
	upload := create(t, p, "DisplayName", "u", "Type", "1", "RemoteUrl", "http://127.0.0.1:1/u", "LocalFile", "/tmp/u")
	done := dl()
	rv(t, p, done, "SetJobState", "JobState", "1")
	cancelled := dl()
	rv(t, p, cancelled, "SetJobState", "JobState", "0")
	for _, tc := range []struct {
		name   string
		id     string
		method string
		kv     []string
		want   uint32
	}{
		{"resume empty job", empty, "SetJobState", []string{"JobState", "2"}, bgEEmpty},
		{"complete acknowledged", done, "SetJobState", []string{"JobState", "1"}, bgEInvalidState},
		{"suspend cancelled", cancelled, "SetJobState", []string{"JobState", "3"}, bgEInvalidState},
		{"add file to cancelled", cancelled, "AddFile", []string{"RemoteUrl", "http://h/x", "LocalFile", "/tmp/x"}, bgEInvalidState},
		{"job action 4", dl(), "SetJobState", []string{"JobState", "4"}, eInvalidArg},
		{"complete suspended upload", upload, "SetJobState", []string{"JobState", "1"}, bgEInvalidState},
		{"second upload file", upload, "AddFile", []string{"RemoteUrl", "http://h/x", "LocalFile", "/tmp/x"}, bgETooManyFiles},
		{"relative local file", dl(), "AddFile", []string{"RemoteUrl", "http://h/x", "LocalFile", "x"}, eInvalidArg},
		{"ftp url", dl(), "AddFile", []string{"RemoteUrl", "ftp://h/x", "LocalFile", "/tmp/x"}, eInvalidArg},
		{"local file is a directory", dl(), "AddFile", []string{"RemoteUrl", "http://h/x", "LocalFile", "/tmp/dir/"}, eInvalidArg},
		{"windows local file is a directory", dl(), "AddFile", []string{"RemoteUrl", "http://h/x", "LocalFile", `C:\Data\`}, eInvalidArg},
		{"create with a directory as local file", "", "CreateJob", []string{"DisplayName", "x", "RemoteUrl", "http://h/x", "LocalFile", "/tmp/dir/", "Suspend", "true"}, eInvalidArg},
		{"GetError while suspended", dl(), "GetError", []string{"LanguageId", "1033"}, bgEErrorInfoUnavailable},
		{"credentials target 2", dl(), "SetCredentials", []string{"Target", "2", "Scheme", "0", "UserName", "u", "Password", "p"}, bgEInvalidAuthTarget},
		{"credentials scheme 5", dl(), "SetCredentials", []string{"Target", "0", "Scheme", "5", "UserName", "u", "Password", "p"}, bgEInvalidAuthScheme},
		{"credentials ok", dl(), "SetCredentials", []string{"Target", "1", "Scheme", "2", "UserName", "u", "Password", "p"}, 0},
		{"remove credentials scheme 9", dl(), "RemoveCredentials", []string{"Target", "0", "Scheme", "9"}, bgEInvalidAuthScheme},
		{"remove credentials", dl(), "RemoveCredentials", []string{"Target", "0", "Scheme", "0"}, 0},
		{"proxy list with usage 1", dl(), "SetProxySettings", []string{"ProxyUsage", "1", "ProxyList", "proxy:8080"}, eInvalidArg},
		{"bypass with usage 3", dl(), "SetProxySettings", []string{"ProxyUsage", "3", "ProxyBypassList", "<local>"}, eInvalidArg},
		{"override without list", dl(), "SetProxySettings", []string{"ProxyUsage", "2"}, eInvalidArg},
		{"override", dl(), "SetProxySettings", []string{"ProxyUsage", "2", "ProxyList", "proxy:8080", "ProxyBypassList", "<local>"}, 0},
		{"no proxy", dl(), "SetProxySettings", []string{"ProxyUsage", "1"}, 0},
		{"cert by name", dl(), "SetClientCertificateByName", []string{"CertStoreLocation", "1", "StoreName", "MY", "SubjectName", "client"}, 0},
		{"cert store 8", dl(), "SetClientCertificateByName", []string{"CertStoreLocation", "8", "StoreName", "MY", "SubjectName", "client"}, eInvalidArg},
		{"remove cert", dl(), "RemoveClientCertificate", nil, 0},
		{"create type 2", "", "CreateJob", []string{"DisplayName", "x", "Type", "2", "Suspend", "true"}, eInvalidArg},
		{"create url without file", "", "CreateJob", []string{"DisplayName", "x", "RemoteUrl", "http://h/x"}, eInvalidArg},
		{"create without name", "", "CreateJob", []string{"RemoteUrl", "http://h/x", "LocalFile", "/tmp/x"}, eInvalidArg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rv(t, p, tc.id, tc.method, tc.kv...); got != tc.want {
				t.Fatalf("ReturnValue 0x%08X, want 0x%08X", got, tc.want)
			}
		})
	}
	t.Run("empty job stays suspended", func(t *testing.T) {
		if s := state(t, p, empty); s != bitsprov.StateSuspended {
			t.Fatalf("state %s", s)
		}
	})
	t.Run("cert by id", func(t *testing.T) {
		in := input("SetClientCertificateById", "CertStoreLocation", "1", "StoreName", "MY")
		hash := wsman.Property{Name: "CertHash"}
		for i := range 20 {
			hash.Values = append(hash.Values, wsman.Value{Text: strconv.Itoa(i * 12)})
		}
		in.Props = append(in.Props, hash)
		out, err := p.Invoke(context.Background(), req(dl(), "SetClientCertificateById"), "SetClientCertificateById", in)
		if err != nil || prop(t, out, "ReturnValue") != "0" {
			t.Fatalf("out %+v err %v", out, err)
		}
		in.Props[2].Values = in.Props[2].Values[:19]
		out, err = p.Invoke(context.Background(), req(dl(), "SetClientCertificateById"), "SetClientCertificateById", in)
		if err != nil || prop(t, out, "ReturnValue") != strconv.FormatUint(uint64(eInvalidArg), 10) {
			t.Fatalf("19-byte hash: out %+v err %v", out, err)
		}
	})
}

func TestInvokeFaults(t *testing.T) {
	p := newTestProvider(t, Config{})
	id := create(t, p, "DisplayName", "f")
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		r       *wsmantest.Request
		method  string
		in      *wsman.Instance
		subcode string
		code    uint32
	}{
		{"unknown method", req(id, "Frobnicate"), "Frobnicate", nil, "ActionNotSupported", wsman.CodeActionNotSupported},
		{"CreateJob with selectors", req(id, "CreateJob"), "CreateJob", input("CreateJob", "DisplayName", "x"), "InvalidSelectors", wsman.CodeInvalidSelectors},
		{"instance method without selectors", req("", "SetJobState"), "SetJobState", input("SetJobState", "JobState", "2"), "InvalidSelectors", 0x8033805A},
		{"unknown job", req("{00000000-0000-0000-0000-000000000001}", "SetJobState"), "SetJobState", input("SetJobState", "JobState", "2"), "DestinationUnreachable", wsman.CodeResourceNotFound},
		{"unknown parameter", req(id, "SetJobState"), "SetJobState", input("SetJobState", "State", "2"), "InvalidParameter", wbemInvalidMethodPar},
		{"not a uint16", req(id, "SetJobState"), "SetJobState", input("SetJobState", "JobState", "70000"), "InvalidParameter", wbemTypeMismatch},
		{"not a boolean", req("", "CreateJob"), "CreateJob", input("CreateJob", "DisplayName", "x", "Suspend", "maybe"), "InvalidParameter", wbemTypeMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Invoke(ctx, tc.r, tc.method, tc.in)
			fault(t, err, tc.subcode, tc.code)
		})
	}
	t.Run("method name is case-insensitive", func(t *testing.T) {
		out, err := p.Invoke(ctx, req(id, "getERROR"), "getERROR", nil)
		if err != nil {
			t.Fatal(err)
		}
		if out.ClassName != "GetError_OUTPUT" {
			t.Fatalf("output %s", out.ClassName)
		}
	})
}

func TestCloseStopsTransfers(t *testing.T) {
	_, srv := newStallServer(t, 10000)
	p := New(Config{TimeScale: 0.001})
	id := create(t, p, "DisplayName", "c", "RemoteUrl", srv.URL+"/x", "LocalFile", filepath.Join(t.TempDir(), "x"))
	rv(t, p, id, "SetJobState", "JobState", "2")
	waitState(t, p, id, bitsprov.StateTransferring)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Jobs keep their state; nothing runs any more.
	if s := state(t, p, id); s != bitsprov.StateTransferring {
		t.Fatalf("state %s after Close", s)
	}
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, fn := range []string{"bitssim.(*Provider).startLocked", "bitssim.(*Provider).retryLocked", "bitssim.newWatchdog"} {
		if strings.Contains(stacks, fn) {
			t.Fatalf("a goroutine of %s outlived Close:\n%s", fn, stacks)
		}
	}
}

func TestHostPath(t *testing.T) {
	root := t.TempDir()
	with := New(Config{LocalRoot: root})
	without := New(Config{})
	t.Cleanup(func() { _ = with.Close(); _ = without.Close() })
	for _, tc := range []struct {
		local, with, without string
	}{
		{`C:\data\a.bin`, filepath.Join(root, "C", "data", "a.bin"), ""},
		{`d:\x\..\..\..\y`, filepath.Join(root, "D", "y"), ""},
		{`\\srv\share\f`, filepath.Join(root, "UNC", "srv", "share", "f"), ""},
		{"/var/tmp/f", "/var/tmp/f", "/var/tmp/f"},
		{`\\srv\share\..\..\f`, filepath.Join(root, "UNC", "srv", "share", "f"), ""},
		{`\\srv`, "", ""},
		{"relative/f", "", ""},
	} {
		t.Run(tc.local, func(t *testing.T) {
			if got := with.hostPath(tc.local); got != tc.with {
				t.Errorf("with LocalRoot: %q, want %q", got, tc.with)
			}
			if got := without.hostPath(tc.local); got != tc.without {
				t.Errorf("without LocalRoot: %q, want %q", got, tc.without)
			}
		})
	}
}
