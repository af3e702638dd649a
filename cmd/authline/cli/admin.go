package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

// newAdminCmd is the group of account-management commands. Each lives in
// its own admin_*.go file, as a command for the saved token and a function
// that the shell reuses on its session.
func newAdminCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin <command>",
		Short: "Manage accounts (admins only)",
		Long: `Manage the accounts of the server, as the admin logged in to the --server
address with "authline login". Anyone else is refused (forbidden, exit 1).
The server refuses to remove, demote or disable its last admin (conflict).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newAdminUsersCmd(f),
		newAdminUserCmd(f),
		newAdminSetRoleCmd(f),
		newAdminDisableCmd(f),
		newAdminEnableCmd(f),
		newAdminDeleteCmd(f),
		newAdminUnlockCmd(f),
		newAdminRevokeCmd(f),
	)
	for _, c := range cmd.Commands() {
		if c.Long == "" {
			c.Long = c.Short + "."
		}
		c.Long += "\n" + exitCodesHelp
	}
	return cmd
}

// runSaved runs fn as the user logged in to --server.
func (f *Factory) runSaved(ctx context.Context, fn func(asUser) error) error {
	tc, err := f.connectSaved(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	return fn(tc)
}

// userChange is an admin request that answers with the account it read or
// changed: USER, SETROLE, DISABLE, ENABLE, UNLOCK, REVOKE.
type userChange func(c *client.Client, ctx context.Context, token, username string) (*protocol.UserInfo, error)

// adminUserChange makes the request for username and prints the account:
// the summary line (if any) and "key: value" lines, or the account as a
// JSON object.
func adminUserChange(ctx context.Context, f *Factory, u asUser, username string, req userChange, summary string) error {
	var info *protocol.UserInfo
	err := u.do(ctx, func(ctx context.Context, c *client.Client, token string) (err error) {
		info, err = req(c, ctx, token, username)
		return err
	})
	if err != nil {
		return err
	}
	if f.JSON() {
		return f.printResult(info, "")
	}
	var b strings.Builder
	if summary != "" {
		b.WriteString(summary + "\n")
	}
	writeUserInfo(&b, info)
	return f.printResult(nil, strings.TrimSuffix(b.String(), "\n"))
}

// Times in text output: local, to the second.
const textTime = "2006-01-02 15:04:05"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(textTime)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeUserInfo writes one account as aligned "key: value" lines.
func writeUserInfo(w io.Writer, u *protocol.UserInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintf(tw, "username:\t%s\n", u.Username)
	fmt.Fprintf(tw, "role:\t%s\n", u.Role)
	fmt.Fprintf(tw, "disabled:\t%s\n", yesNo(u.Disabled))
	throttled := yesNo(u.Throttled)
	if u.Throttled && u.RetryAfter > 0 {
		throttled += fmt.Sprintf(" (logins wait %s)", time.Duration(u.RetryAfter)*time.Second)
	}
	fmt.Fprintf(tw, "throttled:\t%s\n", throttled)
	fmt.Fprintf(tw, "last login:\t%s\n", formatTime(u.LastLogin))
	fmt.Fprintf(tw, "created:\t%s\n", formatTime(u.CreatedAt))
	tw.Flush()
}

// writeUsersTable writes accounts as an aligned table with a header.
func writeUsersTable(w io.Writer, users []protocol.UserInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tDISABLED\tLAST LOGIN\tCREATED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, yesNo(u.Disabled), formatTime(u.LastLogin), formatTime(u.CreatedAt))
	}
	tw.Flush()
}
