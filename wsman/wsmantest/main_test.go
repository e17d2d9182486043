package wsmantest_test

import (
	"testing"

	"github.com/bitsremote/bitsremote/internal/leakcheck"
)

// TestMain fails the package when server, provider or client goroutines
// outlive the tests.
func TestMain(m *testing.M) { leakcheck.Main(m, "bitsremote/wsman") }
