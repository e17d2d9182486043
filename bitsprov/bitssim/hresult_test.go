package bitssim

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLocalFileCodeDirectory: a file operation aimed at a directory is
// ERROR_ACCESS_DENIED on Windows (CreateFile and MoveFileEx onto a
// directory both fail so), not E_FAIL. A job whose LocalFile is an
// existing directory meets it when Complete renames its BIT*.tmp.
func TestLocalFileCodeDirectory(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "BIT1234.tmp")
	if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	renameErr := os.Rename(tmp, dest)
	_, openErr := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE, 0o644)
	for name, err := range map[string]error{"rename onto a directory": renameErr, "open a directory for writing": openErr} {
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if got := localFileCode(err); got != eAccessDenied {
			t.Errorf("%s (%v): localFileCode = 0x%08X, want ERROR_ACCESS_DENIED 0x%08X", name, err, got, eAccessDenied)
		}
	}
}
