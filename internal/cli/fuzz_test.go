package cli

import (
	"strings"
	"testing"
)

// FuzzReadTransferCSV checks that no CSV input panics or hangs, and that
// every row is either usable or carries an error naming its row.
func FuzzReadTransferCSV(f *testing.F) {
	f.Add("Source,Destination\nhttp://h/a,C:\\a\n")
	f.Add("\ufeff#TYPE x\n\"Source\",\"Destination\"\n\"a\",\"\"\n")
	f.Add("Source,Destination\n\"unterminated\n")
	f.Fuzz(func(t *testing.T, in string) {
		rows, err := readTransferCSV(strings.NewReader(in), "f.csv")
		if err != nil {
			if ExitCode(err) != ExitUsage {
				t.Fatalf("file-level error %v is not a usage error", err)
			}
			return
		}
		for _, r := range rows {
			if r.Err == nil && (r.Source == "" || r.Destination == "") {
				t.Fatalf("row %d has no error but an empty field: %+v", r.N, r)
			}
			if r.Err != nil && !strings.Contains(r.Err.Error(), "f.csv row ") {
				t.Fatalf("row error does not name the row: %v", r.Err)
			}
		}
	})
}

// FuzzParseHost checks that no host spec panics and that every accepted
// one yields an http(s) endpoint ending in a path.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"server1", "server1:5986", "[::1]:5985", "https://h", "http://u:p@h", "h:0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ep, err := parseHost(spec, 5985, false)
		if err != nil {
			return
		}
		if !strings.HasPrefix(ep.URL, "http://") && !strings.HasPrefix(ep.URL, "https://") {
			t.Fatalf("parseHost(%q) = %+v", spec, ep)
		}
		if ep.Name == "" {
			t.Fatalf("parseHost(%q) has no name", spec)
		}
	})
}
