package bitssim

import (
	"context"
	"strings"
	"testing"
)

// TestStringLimitsCountWCHARs: CreateJob and Put limit DisplayName to 256
// and Description to 1,024 UTF-16 code units, as Windows counts them: "é"
// is one, "😀" is two, whatever their UTF-8 length.
func TestStringLimitsCountWCHARs(t *testing.T) {
	p := newTestProvider(t, Config{})
	for _, tc := range []struct {
		name, desc string
		want       uint32
	}{
		{strings.Repeat("é", 256), strings.Repeat("é", 1024), sOK},
		{strings.Repeat("😀", 128), strings.Repeat("😀", 512), sOK},
		{strings.Repeat("é", 257), "", bgEStringTooLong},
		{"x", strings.Repeat("😀", 513), bgEStringTooLong},
		{"x", strings.Repeat("d", 1025), bgEStringTooLong},
	} {
		out := invoke(t, p, "", "CreateJob", "DisplayName", tc.name, "Description", tc.desc, "Suspend", "true")
		if got := prop(t, out, "ReturnValue"); got != u64(uint64(tc.want)) {
			t.Errorf("CreateJob with %d-rune name, %d-rune description: ReturnValue %s, want %d",
				len([]rune(tc.name)), len([]rune(tc.desc)), got, tc.want)
		}
	}

	id := create(t, p, "DisplayName", "put")
	for _, tc := range []struct {
		prop, text string
		ok         bool
	}{
		{"Description", strings.Repeat("é", 1024), true},
		{"Description", strings.Repeat("😀", 513), false},
		{"DisplayName", strings.Repeat("😀", 128), true},
		{"DisplayName", strings.Repeat("é", 257), false},
	} {
		in := get(t, p, id)
		findProp(in, tc.prop).Values[0].Text = tc.text
		_, err := p.Put(context.Background(), req(id, ""), in)
		if (err == nil) != tc.ok {
			t.Errorf("Put %s of %d runes: err %v, want ok=%v", tc.prop, len([]rune(tc.text)), err, tc.ok)
		}
	}
}
