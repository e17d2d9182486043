package integration

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	bitsAlias = "wmi/root/microsoft/bits/BitsClientJob"
	bitsURI   = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/microsoft/bits/BitsClientJob"
)

// TestWSMan drives the generic WS-Management commands against the BITS
// provider: identify without credentials, get/put/invoke with -s, -v,
// aliases and full URIs, --xpath, enumerate with --filter and
// --max-elements, create and delete (faults from this provider), and bad
// input.
func TestWSMan(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	fs := newFileServer(t)
	dir := t.TempDir()
	host := s.host().Host
	ids := map[string]string{}
	for _, name := range []string{"wsman-a", "wsman-b", "wsman-c"} {
		u, _ := fs.addRandom(name, 100)
		res := s.run(t, "create", "--url", u, "--local", filepath.Join(dir, name), "--name", name, "--suspended")
		wantCode(t, res, 0)
		ids[name] = strings.TrimSpace(res.Stdout)
	}
	idA := ids["wsman-a"]

	t.Run("identify needs no password", func(t *testing.T) {
		res := run(t, runSpec{args: []string{"wsman", "identify", "-H", host, "-o", "json"}})
		wantCode(t, res, 0)
		var got struct {
			Host             string   `json:"host"`
			ProtocolVersion  string   `json:"protocolVersion"`
			ProductVendor    string   `json:"productVendor"`
			ProductVersion   string   `json:"productVersion"`
			SecurityProfiles []string `json:"securityProfiles"`
		}
		decode(t, res, &got)
		if got.Host != host || got.ProtocolVersion != "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" ||
			got.ProductVendor != "Microsoft Corporation" || !strings.HasPrefix(got.ProductVersion, "OS: ") {
			t.Errorf("wsman identify -o json: %+v", got)
		}
		res = run(t, runSpec{args: []string{"wsman", "identify", "-H", host, "--xpath", "//*[local-name()='ProductVendor']"}})
		wantCode(t, res, 0)
		if strings.TrimSpace(res.Stdout) != "Microsoft Corporation" {
			t.Errorf("wsman identify --xpath: %q", res.Stdout)
		}
	})

	t.Run("get with alias and full URI", func(t *testing.T) {
		var first map[string]any
		for _, uri := range []string{bitsAlias, bitsURI} {
			res := s.run(t, "wsman", "get", uri, "-s", "JobId="+idA, "-o", "json")
			wantCode(t, res, 0)
			if k := firstKey(t, []byte(res.Stdout)); k == "host" {
				t.Errorf("one host: instance JSON starts with host")
			}
			var got map[string]any
			decode(t, res, &got)
			want := map[string]any{
				"JobId": idA, "DisplayName": "wsman-a", "State": "3", "Priority": "2",
				"Owner": networkService, "FilesTotal": "1", "FilesTransferred": "0",
				// The generic commands show the wire: an unknown size
				// is the provider's UINT64_MAX string.
				"BytesTotal": "18446744073709551615", "BytesTransferred": "0",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("wsman get %s: %s = %#v, want %#v", uri, k, got[k], v)
				}
			}
			files, ok := got["Files"].(map[string]any)
			if !ok || files["RemoteUrl"] != fs.URL+"/wsman-a" || files["LocalFile"] != filepath.Join(dir, "wsman-a") || files["Completed"] != "false" {
				t.Errorf("wsman get %s: Files = %#v", uri, got["Files"])
			}
			if first == nil {
				first = got
			} else if diff := cmp.Diff(first, got); diff != "" {
				t.Errorf("alias and full URI differ (-alias +full):\n%s", diff)
			}
		}
		res := s.run(t, "wsman", "get", bitsAlias, "-s", "JobId="+idA, "--xpath", "//p:State", "-o", "json")
		wantCode(t, res, 0)
		var xp struct {
			Values []string `json:"values"`
		}
		decode(t, res, &xp)
		if !cmp.Equal(xp.Values, []string{"3"}) {
			t.Errorf("--xpath //p:State = %q, want [3]", xp.Values)
		}
		res = s.run(t, "wsman", "get", bitsAlias, "-s", "JobId="+idA)
		wantCode(t, res, 0)
		if !hasLine(res.Stdout, "DisplayName = wsman-a") || !hasLine(res.Stdout, "JobId = "+idA) {
			t.Errorf("wsman get (table):\n%s", res.Stdout)
		}
	})

	t.Run("put", func(t *testing.T) {
		id := ids["wsman-b"]
		res := s.run(t, "wsman", "put", bitsAlias, "-s", "JobId="+id, "-v", "Priority=1", "-v", "Description=set by wsman put", "-o", "json")
		wantCode(t, res, 0)
		var got map[string]any
		decode(t, res, &got)
		if got["Priority"] != "1" || got["Description"] != "set by wsman put" || got["JobId"] != id {
			t.Errorf("wsman put: Priority %v, Description %v, JobId %v", got["Priority"], got["Description"], got["JobId"])
		}
		res = s.run(t, "get", id, "-o", "json")
		wantCode(t, res, 0)
		var j jobJSON
		decode(t, res, &j)
		if j.Priority != "High" || j.Description != "set by wsman put" {
			t.Errorf("after wsman put: priority %s, description %q", j.Priority, j.Description)
		}
		// A property the instance does not have is refused before Put,
		// as a usage error naming the property and the class.
		res = s.run(t, "wsman", "put", bitsAlias, "-s", "JobId="+id, "-v", "NoSuchProperty=1")
		wantCode(t, res, 2)
		if want := "bitsremote: " + host + ": put: property NoSuchProperty is not in the BitsClientJob instance; nothing was sent\n"; res.Stderr != want {
			t.Errorf("wsman put of an unknown property: stderr %q, want %q", res.Stderr, want)
		}
	})

	t.Run("invoke", func(t *testing.T) {
		id := ids["wsman-c"]
		res := s.run(t, "wsman", "invoke", bitsAlias, "SetJobState", "-s", "JobId="+id, "-v", "JobState=0", "-o", "json")
		wantCode(t, res, 0)
		var got map[string]any
		decode(t, res, &got)
		if diff := cmp.Diff(map[string]any{"ReturnValue": "0"}, got); diff != "" {
			t.Errorf("wsman invoke SetJobState 0 (-want +got):\n%s", diff)
		}
		wantCode(t, s.run(t, "get", id), 5)
		res = s.run(t, "wsman", "invoke", bitsURI, "NoSuchMethod", "-s", "JobId="+idA)
		wantCode(t, res, 5)
		if !strings.Contains(res.Stderr, "ActionNotSupported") {
			t.Errorf("invoke of an unknown method: stderr lacks ActionNotSupported:\n%s", res.Stderr)
		}
	})

	t.Run("enumerate", func(t *testing.T) {
		want := []string{idA, ids["wsman-b"]}
		slices.Sort(want)
		for _, args := range [][]string{
			{"wsman", "enumerate", bitsAlias, "-o", "json"},
			{"wsman", "enumerate", bitsAlias, "--max-elements", "1", "-o", "json"},
			{"wsman", "enumerate", bitsURI, "--max-elements", "2", "-o", "json"},
		} {
			res := s.run(t, args...)
			wantCode(t, res, 0)
			var items []map[string]any
			decode(t, res, &items)
			var got []string
			for _, it := range items {
				got = append(got, it["JobId"].(string))
			}
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v (-want +got):\n%s", args, diff)
			}
		}
		res := s.run(t, "wsman", "enumerate", "wmi/root/microsoft/bits/*", "--filter", "SELECT * FROM BitsClientJob WHERE DisplayName = 'wsman-b'", "-o", "jsonl")
		wantCode(t, res, 0)
		items := decodeLines[map[string]any](t, res)
		if len(items) != 1 || items[0]["JobId"] != ids["wsman-b"] {
			t.Errorf("enumerate --filter DisplayName = 'wsman-b': %v", items)
		}
		res = s.run(t, "wsman", "enumerate", bitsAlias, "--max-elements", "1", "--xpath", "//p:DisplayName", "-o", "jsonl")
		wantCode(t, res, 0)
		var names []string
		for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
			var v struct {
				Values []string `json:"values"`
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("enumerate --xpath line %q: %v", line, err)
			}
			names = append(names, v.Values...)
		}
		slices.Sort(names)
		if !cmp.Equal(names, []string{"wsman-a", "wsman-b"}) {
			t.Errorf("enumerate --xpath //p:DisplayName: %q", names)
		}
	})

	t.Run("create and delete are not supported by the provider", func(t *testing.T) {
		for _, args := range [][]string{
			{"wsman", "create", bitsAlias, "-v", "DisplayName=x"},
			{"wsman", "delete", bitsAlias, "-s", "JobId=" + idA},
		} {
			res := s.run(t, args...)
			wantCode(t, res, 5)
			if !strings.Contains(res.Stderr, "ActionNotSupported") || !strings.Contains(res.Stderr, host) {
				t.Errorf("%v: stderr lacks the host and ActionNotSupported:\n%s", args, res.Stderr)
			}
		}
		// The job is still there.
		wantCode(t, s.run(t, "get", idA), 0)
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"wsman", "get", bitsAlias, "-s", "JobId"}, 2, `-s "JobId": want Name=Value`},
			{[]string{"wsman", "get", bitsAlias, "-s", "=x"}, 2, `-s "=x"`},
			{[]string{"wsman", "put", bitsAlias, "-s", "JobId=" + idA, "-v", "Priority"}, 2, `-v "Priority"`},
			{[]string{"wsman", "get", "nope/Foo"}, 2, "nope/Foo"},
			{[]string{"wsman", "get", bitsAlias, "-s", "JobId=" + idA, "--xpath", "//q:State"}, 2, `prefix "q" is not declared`},
			{[]string{"wsman", "get", bitsAlias, "-s", "JobId=" + idA, "--xpath", "//p:State["}, 2, "--xpath"},
			{[]string{"wsman", "enumerate", bitsAlias, "--max-elements", "-1"}, 2, "--max-elements"},
			{[]string{"wsman", "invoke", bitsAlias, "Set/JobState"}, 2, "Set/JobState"},
			{[]string{"wsman", "get"}, 2, "RESOURCE_URI"},
			{[]string{"wsman", "get", bitsAlias, "-s", "JobId={00000000-0000-0000-0000-000000000000}"}, 5, "DestinationUnreachable"},
		} {
			res := s.run(t, tc.args...)
			wantCode(t, res, tc.code)
			if !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, tc.want, res.Stderr)
			}
		}
	})
}
