package transport

import (
	"testing"

	"github.com/bitsremote/bitsremote/internal/leakcheck"
)

// TestMain fails the package when a goroutine running our code (the
// module path is the marker, so test helpers count too) outlives the
// tests: a connection, a test server or proxy, or a handshake left
// running is caught here.
func TestMain(m *testing.M) { leakcheck.Main(m, "github.com/bitsremote/bitsremote/") }
