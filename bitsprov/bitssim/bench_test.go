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
	er := &wsmantest.EnumerateRequest{Request: req("", "")}
	b.ReportAllocs()
	for b.Loop() {
		items, err := p.Enumerate(context.Background(), er)
		if err != nil || len(items) != 100 {
			b.Fatal(len(items), err)
		}
	}
}
