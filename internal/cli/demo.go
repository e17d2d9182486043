package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// DemoOptions are the options of "demo".
type DemoOptions struct {
	f    *Factory
	Dir  string
	Size int64
}

// demoRecord is what "demo -o json" prints.
type demoRecord struct {
	Host              string       `json:"host"`
	JobID             string       `json:"jobId"`
	Source            string       `json:"source"`
	Destination       string       `json:"destination"`
	Bytes             int64        `json:"bytes"`
	SHA256Source      string       `json:"sha256Source"`
	SHA256Destination string       `json:"sha256Destination"`
	Match             bool         `json:"match"`
	Job               *jobRecord   `json:"job"`
	Steps             []demoStep   `json:"steps"`
	Elapsed           float64      `json:"elapsedSeconds"`
	Outcome           *outcomeData `json:"outcome"`
}

// demoStep is one call the demo made.
type demoStep struct {
	Step   string `json:"step"`
	Detail string `json:"detail"`
}

// outcomeData is the poller's verdict in the demo's record.
type outcomeData struct {
	Result string `json:"result"`
	Polls  int    `json:"polls"`
}

// NewCmdDemo builds "demo".
func NewCmdDemo(f *Factory) *cobra.Command {
	opts := &DemoOptions{f: f}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a full BITS transfer against an embedded simulated Windows host",
		Long: `Start, inside this process, a simulated Windows host (WinRM with NTLM and
message encryption required, as a default Windows host is, and the BITS
provider) and a file server on loopback serving a generated file; then drive
a real download through the same client code the other commands use, over
real HTTP: create (suspended) -> priority foreground -> resume -> wait with
progress -> complete. It prints where the file landed and its SHA-256 next to
the source's. The user and password are generated in memory for this run.

No Windows host, network or flag is needed; connection flags are ignored.`,
		Example: `  bitsremote demo
  bitsremote demo --size 64MiB --dir /tmp/bits-demo -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return demoRun(cmd.Context(), opts) },
	}
	var size string
	cmd.Flags().StringVar(&opts.Dir, "dir", "", "keep the demo's files here (default: a new temporary directory)")
	cmd.Flags().StringVar(&size, "size", "8MiB", "size of the generated file (B, KiB, MiB)")
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		n, err := parseSize(size)
		if err != nil {
			return usageErrorf("--size: %w", err)
		}
		opts.Size = n
		return nil
	}
	return cmd
}

// parseSize reads "123", "64KiB", "8MiB", "1GiB" (also KB/MB/GB, as binary).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || fmt.Sprint(n) != t {
		return 0, fmt.Errorf("%q is not a size like 8MiB", s)
	}
	if n < 1 || n > 4<<30/mult {
		return 0, fmt.Errorf("%q: want 1 B to 4 GiB", s)
	}
	return n * mult, nil
}

// randomSecret returns n random bytes as URL-safe base64.
func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func demoRun(ctx context.Context, opts *DemoOptions) error {
	f := opts.f
	start := f.Clock.Now()
	dir := opts.Dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "bitsremote-demo-"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return usageErrorf("--dir: %w", err)
	}
	srcDir, dstDir := filepath.Join(dir, "server"), filepath.Join(dir, "host")
	for _, d := range []string{srcDir, dstDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	srcPath := filepath.Join(srcDir, "payload.bin")
	srcSum, err := writeRandomFile(srcPath, opts.Size)
	if err != nil {
		return fmt.Errorf("demo: generate the source file: %w", err)
	}

	user, password := "demo-"+randomSecret(4), randomSecret(18)
	host, err := bitssim.NewHost(bitssim.HostConfig{
		Server: wsmantest.Config{
			Auth:              wsmantest.AuthNTLM,
			Users:             map[string]string{user: password},
			RequireEncryption: true,
			Machine:           "DEMO-HOST",
		},
		Provider: bitssim.Config{TimeScale: 0.01},
		FilesDir: srcDir,
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer host.Close()

	narrate := f.Conn.Output == "table"
	say := func(format string, a ...any) {
		if narrate {
			f.IO.Printf(format+"\n", a...)
		}
	}
	var steps []demoStep
	step := func(name, detail string) {
		steps = append(steps, demoStep{Step: name, Detail: detail})
		say("  %-10s %s", name, detail)
	}

	say("Simulated Windows host at %s (NTLM, message encryption required)", host.URL)
	say("File server at %s serving payload.bin (%s, sha256 %s)", host.FilesURL, humanBytes(uint64(opts.Size)), srcSum)

	t, err := f.NewTransport(transport.Config{
		Auth: transport.AuthNTLM, User: user, Password: password,
		Encryption: transport.EncryptionAlways, DialTimeout: 10 * time.Second, ResponseTimeout: 30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if c, ok := t.(interface{ CloseIdleConnections() }); ok {
		defer c.CloseIdleConnections()
	}
	hostName := strings.TrimSuffix(strings.TrimPrefix(host.URL, "http://"), "/wsman")
	if f.Conn.Debug {
		t = &debugTransport{next: t, log: f.log(), host: hostName}
	}
	wc := wsman.NewClient(host.URL, t)
	wc.Host = hostName
	bc := bitsprov.NewClient(wc)

	id, err := identifyAndCreate(ctx, wc, bc, host.FilesURL+"/payload.bin", filepath.Join(dstDir, "payload.bin"), step)
	if err != nil {
		return err
	}
	if err := bc.SetPriority(ctx, id, bitsprov.PriorityForeground); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	step("priority", "Foreground (Get, patch Priority, Put)")
	if err := bc.Resume(ctx, id); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	step("resume", "SetJobState 2")

	prog := newProgress(f.IO)
	pol := bitsprov.Policy{
		Interval: 50 * time.Millisecond, Backoff: 1.2, MaxInterval: 250 * time.Millisecond,
		Timeout: 2 * time.Minute, OnTransferred: bitsprov.TransferredLeave, OnTransient: bitsprov.TransientWait,
		OnError: bitsprov.ErrorCancel, Clock: f.Clock,
		Progress: func(j *bitsprov.Job) { prog.update(hostName+" "+id, j) },
	}
	oc, err := bc.Wait(ctx, id, pol)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if oc.Action != bitsprov.ResultLeft || oc.Final != bitsprov.StateTransferred {
		return &JobFailedError{Host: hostName, JobID: id, Reason: oc.Reason}
	}
	step("wait", fmt.Sprintf("Transferred after %d polls", oc.Polls))
	code, err := bc.Complete(ctx, id)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	step("complete", "SetJobState 1: "+code.String())

	dst := filepath.Join(dstDir, "payload.bin")
	dstSum, err := fileSHA256(dst)
	if err != nil {
		return fmt.Errorf("demo: the job completed but the file is not there: %w", err)
	}
	rec := demoRecord{
		Host: hostName, JobID: id, Source: host.FilesURL + "/payload.bin", Destination: dst, Bytes: opts.Size,
		SHA256Source: srcSum, SHA256Destination: dstSum, Match: srcSum == dstSum, Steps: steps,
		Elapsed: f.Clock.Now().Sub(start).Round(time.Millisecond).Seconds(),
		Outcome: &outcomeData{Result: "Completed", Polls: oc.Polls},
	}
	if oc.Job != nil {
		j := *oc.Job
		j.State = bitsprov.StateAcknowledged
		rec.Job = &jobRecord{Host: hostName, Job: &j}
	}
	if narrate {
		say("")
		say("Downloaded to %s", dst)
		say("  sha256 source      %s", srcSum)
		say("  sha256 destination %s", dstSum)
		if rec.Match {
			say("The file arrived intact (%s in %.1fs).", humanBytes(uint64(opts.Size)), rec.Elapsed)
		}
		say("")
		say("Next: run \"bitsremote sim\" and point the other commands at it, or a real host:")
		say("  bitsremote transfer https://files.example.com/a.iso 'C:\\Data\\a.iso' -H server1 -u 'CORP\\admin'")
	} else {
		out := newOutput(f.IO, f.Conn.Output, false)
		if err := out.emit(hostName, rec); err != nil {
			return err
		}
		if err := out.flush(nil); err != nil {
			return err
		}
	}
	if !rec.Match {
		return &JobFailedError{Host: hostName, JobID: id, Reason: "transferred, but the file's SHA-256 differs from the source's"}
	}
	return nil
}

// identifyAndCreate shows the host answering Identify, then creates the
// job suspended.
func identifyAndCreate(ctx context.Context, wc *wsman.Client, bc *bitsprov.Client, url, local string, step func(string, string)) (string, error) {
	idr, err := wc.Identify(ctx)
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	step("identify", fmt.Sprintf("%s %s", idr.ProductVendor, idr.ProductVersion))
	id, err := bc.CreateJob(ctx, bitsprov.CreateJobOptions{
		DisplayName: "bitsremote demo", Description: "created by bitsremote demo",
		RemoteURL: url, LocalFile: local, Suspended: true,
	})
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	step("create", id+" (suspended)")
	return id, nil
}

// writeRandomFile writes n random bytes to path and returns their SHA-256.
func writeRandomFile(path string, n int64) (string, error) {
	fh, err := os.Create(path)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(fh, h), rand.Reader, n); err != nil {
		fh.Close()
		return "", err
	}
	if err := fh.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
