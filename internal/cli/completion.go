package cli

import (
	"github.com/spf13/cobra"
)

// NewCmdCompletion prints shell completion scripts.
func NewCmdCompletion(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print a completion script for bash, zsh or fish on stdout.

  bash:  source <(bitsremote completion bash)
  zsh:   bitsremote completion zsh > "${fpath[1]}/_bitsremote"
  fish:  bitsremote completion fish > ~/.config/fish/completions/bitsremote.fish`,
		Example:   "  bitsremote completion bash > /etc/bash_completion.d/bitsremote",
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      exactArgs("SHELL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(f.IO.Out, true)
			case "zsh":
				return root.GenZshCompletion(f.IO.Out)
			case "fish":
				return root.GenFishCompletion(f.IO.Out, true)
			}
			return usageErrorf("unknown shell %q (want bash, zsh or fish)", args[0])
		},
	}
}
