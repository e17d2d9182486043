package cli

import (
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// TestDescriptionLimitFitsMarker: the longest description the CLI
// accepts still fits BITS' 1,024 characters once bitsprov has appended
// its marker, and one more character is refused up front (exit 2).
func TestDescriptionLimitFitsMarker(t *testing.T) {
	desc := strings.Repeat("é", maxDescription)
	if err := checkText("--description", desc, maxDescription); err != nil {
		t.Fatalf("checkText at the limit: %v", err)
	}
	full, err := bitsprov.DescriptionWithMarker(desc, bitsprov.NewMarker())
	if err != nil {
		t.Fatalf("DescriptionWithMarker at the CLI's limit: %v", err)
	}
	if n := len([]rune(full)); n != 1024 {
		t.Errorf("description with marker: %d characters, want exactly 1024", n)
	}
	err = checkText("--description", desc+"x", maxDescription)
	if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "bitsremote allows 974") {
		t.Errorf("one character over: %v (exit %d), want a usage error naming 974", err, ExitCode(err))
	}
	// Windows counts UTF-16 code units: an emoji is two.
	if err := checkText("--name", strings.Repeat("😀", 129), maxName); err == nil || !strings.Contains(err.Error(), "258 characters") {
		t.Errorf("129 emoji as --name: %v, want 258 characters refused", err)
	}
}
