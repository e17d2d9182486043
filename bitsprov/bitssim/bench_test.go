package bitssim

import (
	"context"
	"strconv"
	"testing"

	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

func BenchmarkGet(b *testing.B) {
	p := New(Config{})
	defer p.Close()
	out, err := p.Invoke(context.Background(), req("", "CreateJob"), "CreateJob",
		input("CreateJob", "DisplayName", "b", "RemoteUrl", "http://h/a", "LocalFile", "/tmp/a", "Suspend", "true"))
	if err != nil {
		b.Fatal(err)
	}
	r := req(findProp(out, "JobId").Values[0].Text, "")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Get(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnumerate100(b *testing.B) {
	p := New(Config{})
	defer p.Close()
	for i := range 100 {
		if _, err := p.Invoke(context.Background(), req("", "CreateJob"), "CreateJob",
			input("CreateJob", "DisplayName", strconv.Itoa(i), "RemoteUrl", "http://h/a", "LocalFile", "/tmp/a", "Suspend", "true")); err != nil {
			b.Fatal(err)
		}
	}
	er := &wsmantest.EnumerateRequest{Request: req("", ""), WQL: "SELECT * FROM BitsClientJob WHERE State = 3"}
	b.ReportAllocs()
	for b.Loop() {
		items, err := p.Enumerate(context.Background(), er)
		if err != nil || len(items) != 100 {
			b.Fatal(len(items), err)
		}
	}
}

// FuzzParseWQL feeds arbitrary WQL from the wire to the filter: it must
// refuse or evaluate it, never panic.
func FuzzParseWQL(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM BitsClientJob",
		"select * from BitsClientJob where State = 6",
		"SELECT * FROM BitsClientJob WHERE DisplayName = 'x' AND Priority <= 2",
		"SELECT * FROM BitsClientJob WHERE State = \"",
		"SELECT Name FROM Win32_Process",
	} {
		f.Add(s)
	}
	in := (&job{id: "{X}", files: []*file{{total: sizeUnknown}}}).instance()
	f.Fuzz(func(t *testing.T, q string) {
		conds, err := parseWQL(q)
		if err != nil {
			return
		}
		_ = matchWQL(in, conds)
	})
}
