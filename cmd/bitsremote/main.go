// Command bitsremote runs Windows BITS jobs remotely over WS-Management.
// Everything lives in internal/cli; this file only wires the process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bitsremote/bitsremote/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	f := cli.NewFactory()
	f.Procs = cli.LimitProcs
	code := cli.Execute(ctx, f, os.Args[1:])
	stop()
	os.Exit(code)
}
