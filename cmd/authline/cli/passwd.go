package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type passwdOptions struct {
	*Factory
	PasswordStdin bool
}

func newPasswdCmd(f *Factory) *cobra.Command {
	opts := &passwdOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Change your password",
		Long: `Change the password of the account logged in to the --server address (see
"authline login"). Every other session and token of the account stops
working; the fresh token pair the server returns is saved in place of the
old one.

The current password, then the new one twice, are prompted for without
echo; with --password-stdin the first line of stdin is the current password
and the second the new one.`,
		Example: `  authline passwd
  printf '%s\n%s\n' "$OLD" "$NEW" | authline passwd --password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPasswd(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.PasswordStdin, "password-stdin", false, "read the current and the new password from the first two lines of stdin")
	return cmd
}

// passwdResult is the JSON output of passwd: like login's, without tokens.
type passwdResult struct {
	PasswordChanged bool `json:"password_changed"`
	loginResult
}

func runPasswd(ctx context.Context, opts *passwdOptions) error {
	// Not logged in is found out before asking for any password.
	saved, _, path, err := opts.savedLoginFor()
	if err != nil {
		return err
	}
	oldPW, newPW, err := readPasswordChange(opts.IO, opts.PasswordStdin, "--password-stdin")
	if err != nil {
		return err
	}
	tc, err := opts.connectAs(ctx, saved)
	if err != nil {
		return err
	}
	defer tc.Close()
	var l *protocol.LoginData
	err = tc.do(ctx, func(ctx context.Context, c *client.Client, token string) (err error) {
		l, err = c.Passwd(ctx, oldPW, newPW, token)
		return err
	})
	if err != nil {
		return err
	}
	if l.Token == "" {
		// The server ended every token of the account and gave no new one:
		// the saved one is useless now.
		if err := opts.forgetLogin(ctx, saved.Username); err != nil {
			return err
		}
		res := passwdResult{PasswordChanged: true, loginResult: loginResult{Username: l.Username, Role: l.Role, Mode: l.Mode}}
		return opts.printResult(res, fmt.Sprintf("password of %s changed; other sessions and tokens ended; log in again with: authline login", l.Username))
	}
	if err := opts.saveLogin(ctx, l); err != nil {
		return err
	}
	return opts.printResult(passwdResult{PasswordChanged: true, loginResult: newLoginResult(l, path)},
		fmt.Sprintf("password of %s changed; other sessions and tokens ended; new token saved, %s", l.Username, expiryText(l)))
}

// readPasswordChange reads the current password and the new one: from the
// first two lines of stdin when fromStdin, else from no-echo prompts (the
// new one twice).
func readPasswordChange(s *IOStreams, fromStdin bool, stdinFlag string) (oldPW, newPW string, err error) {
	if !fromStdin {
		if oldPW, err = readPassword(s, false, stdinFlag, "Current password: ", false); err != nil {
			return "", "", err
		}
		if newPW, err = readPassword(s, false, stdinFlag, "New password: ", true); err != nil {
			return "", "", err
		}
		return oldPW, newPW, nil
	}
	var lines [2]string
	for i := range lines {
		line, err := s.ReadLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return "", "", fmt.Errorf("reading passwords: %w", err)
		}
		if line == "" {
			return "", "", usageErrorf("%s needs two lines: the current password, then the new one", stdinFlag)
		}
		lines[i] = line
	}
	return lines[0], lines[1], nil
}
