package transport

import (
	"bytes"
	"slices"
	"testing"
)

func TestIndentXML(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   string
		wantOK bool
	}{
		{
			name: "envelope",
			in:   `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="urn:s" xmlns:a="urn:a"><s:Header><a:To>http://h/wsman</a:To><a:ReplyTo><a:Address s:mustUnderstand='true'>x</a:Address></a:ReplyTo></s:Header><s:Body/></s:Envelope>`,
			want: `<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="urn:s" xmlns:a="urn:a">
  <s:Header>
    <a:To>http://h/wsman</a:To>
    <a:ReplyTo>
      <a:Address s:mustUnderstand='true'>x</a:Address>
    </a:ReplyTo>
  </s:Header>
  <s:Body/>
</s:Envelope>
`,
			wantOK: true,
		},
		{
			name:   "empty element and escapes stay as they are",
			in:     `<a><b></b><c>1 &lt; 2 &amp;&#xD;</c><!--note--><d x="&quot;"/></a>`,
			want:   "<a>\n  <b></b>\n  <c>1 &lt; 2 &amp;&#xD;</c>\n  <!--note-->\n  <d x=\"&quot;\"/>\n</a>\n",
			wantOK: true,
		},
		{
			name:   "whitespace values survive",
			in:     `<a><b> </b><c>` + "\n" + `</c></a>`,
			want:   "<a>\n  <b> </b>\n  <c>\n</c>\n</a>\n",
			wantOK: true,
		},
		{
			name:   "already indented is left alone",
			in:     "<a>\n  <b/>\n</a>",
			want:   "<a>\n  <b/>\n</a>",
			wantOK: false,
		},
		{name: "not XML", in: "Bad Request", want: "Bad Request"},
		{name: "empty", in: "", want: ""},
		{name: "truncated", in: "<a><b>", want: "<a><b>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := indentXML([]byte(tc.in))
			if string(got) != tc.want || ok != tc.wantOK {
				t.Errorf("indentXML = %q, %v; want %q, %v", got, ok, tc.want, tc.wantOK)
			}
			if ok {
				if back := compactXML(got); string(back) != tc.in {
					t.Errorf("compactXML = %q, want the input back", back)
				}
			}
		})
	}
}

func TestRewriteLeaves(t *testing.T) {
	in := `<s:E xmlns:s="urn:s" xmlns:a="urn:a" xmlns:b="urn:a"><s:H><a:MessageID>m1</a:MessageID><b:MessageID>m2</b:MessageID><x:MessageID xmlns:x="urn:other">m3</x:MessageID><MessageID xmlns="urn:a"></MessageID></s:H></s:E>`
	got := rewriteLeaves([]byte(in), func(ns, local, text string) (string, bool) {
		return "<" + text + ">", ns == "urn:a" && local == "MessageID"
	})
	want := `<s:E xmlns:s="urn:s" xmlns:a="urn:a" xmlns:b="urn:a"><s:H><a:MessageID><m1></a:MessageID><b:MessageID><m2></b:MessageID><x:MessageID xmlns:x="urn:other">m3</x:MessageID><MessageID xmlns="urn:a"><></MessageID></s:H></s:E>`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if text, ok := leafText([]byte(in), "urn:a", "MessageID"); text != "m1" || !ok {
		t.Errorf("leafText = %q, %v", text, ok)
	}
}

func FuzzIndentXML(f *testing.F) {
	f.Add([]byte(`<a><b x="1">t</b><c/></a>`))
	f.Add([]byte(`<?xml version="1.0"?><a>` + "\n" + `<b/></a>`))
	f.Add([]byte(`<a><![CDATA[<b>]]></a>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := indentXML(b)
		if !ok {
			if !bytes.Equal(out, b) {
				t.Fatalf("not ok but changed: %q -> %q", b, out)
			}
			return
		}
		if back := compactXML(out); !bytes.Equal(back, b) {
			t.Fatalf("compactXML(indentXML(%q)) = %q", b, back)
		}
	})
}

func sortStrings(s []string) { slices.Sort(s) }

func TestLineDiff(t *testing.T) {
	tests := []struct{ name, a, b, want string }{
		{"same", "a\nb\n", "a\nb\n", ""},
		{"added at end", "a\nb\n", "a\nb\nc\n", "    1 a\n    2 b\n+   3 c\n"},
		{"removed first", "x\na\nb\nc\nd\ne\n", "a\nb\nc\nd\ne\n", "-   1 x\n    2 a\n    3 b\n"},
		{
			"two hunks",
			"1\n2\n3\n4\n5\n6\n7\n8\n9\n",
			"1\nX\n3\n4\n5\n6\n7\nY\n9\n",
			"    1 1\n-   2 2\n+   2 X\n    3 3\n    4 4\n   ...\n    6 6\n    7 7\n-   8 8\n+   8 Y\n    9 9\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lineDiff(tc.a, tc.b); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
