package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

// NewCmdDemo builds "demo".
func NewCmdDemo(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run a full transfer against an embedded simulated host",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("demo: waiting for bitssim.Host")
		},
	}
}

// NewCmdSim builds "sim".
func NewCmdSim(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "sim",
		Short: "Run simulated hosts in the foreground",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("sim: waiting for bitssim.Host")
		},
	}
}
