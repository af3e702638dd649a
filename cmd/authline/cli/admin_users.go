package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type adminUsersOptions struct {
	*Factory
	Limit    int
	After    string
	AllPages bool
}

func newAdminUsersCmd(f *Factory) *cobra.Command {
	opts := &adminUsersOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "users",
		Short: "List accounts",
		Long: fmt.Sprintf(`List accounts in username order, one page at a time: --limit per page
(default %d, at most %d), starting after --after. When there are more, the
command to get the next page is shown on stderr; --all-pages fetches them
all.

Text output is a table; --output json prints the page as the server sent it
({"users":[...],"next":"..."}), or with --all-pages one object holding every
account ({"users":[...]}).`, protocol.DefaultUsersLimit, protocol.MaxUsersLimit),
		Example: `  authline admin users
  authline admin users --limit 50 --after mallory
  authline admin users --all-pages -o json | jq -r '.users[].username'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Limit < 0 || opts.Limit > protocol.MaxUsersLimit {
				return usageErrorf("--limit must be 1 to %d", protocol.MaxUsersLimit)
			}
			return runAdminUsers(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Limit, "limit", 0, "accounts per page (0: the server's default)")
	cmd.Flags().StringVar(&opts.After, "after", "", "list accounts whose names sort after this one")
	cmd.Flags().BoolVar(&opts.AllPages, "all-pages", false, "fetch every page, not only the first")
	return cmd
}

func runAdminUsers(ctx context.Context, opts *adminUsersOptions) error {
	return opts.runSaved(ctx, func(u asUser) error {
		return adminUsers(ctx, opts.Factory, u, opts.Limit, opts.After, opts.AllPages, func(next string) string {
			limit := ""
			if opts.Limit > 0 {
				limit = fmt.Sprintf(" --limit %d", opts.Limit)
			}
			return fmt.Sprintf("authline admin users%s --after %s (or --all-pages)", limit, next)
		})
	})
}

// adminUsers lists one page of accounts, or all of them. more tells how to
// get the next page, for the hint on stderr.
func adminUsers(ctx context.Context, f *Factory, u asUser, limit int, after string, allPages bool, more func(next string) string) error {
	page := func(after string) (*protocol.UsersData, error) {
		var d *protocol.UsersData
		err := u.do(ctx, func(ctx context.Context, c *client.Client, token string) (err error) {
			d, err = c.Users(ctx, token, limit, after)
			return err
		})
		return d, err
	}
	d, err := page(after)
	if err != nil {
		return err
	}
	if allPages {
		all := &protocol.UsersData{Users: d.Users}
		for seen := map[string]bool{}; d.Next != ""; {
			if seen[d.Next] || d.Next == after {
				return fmt.Errorf("the server gave the page after %q twice", d.Next)
			}
			seen[d.Next], after = true, d.Next
			if d, err = page(after); err != nil {
				return err
			}
			all.Users = append(all.Users, d.Users...)
		}
		d = all
	}
	if d.Users == nil {
		d.Users = []protocol.UserInfo{} // [] rather than null in JSON
	}
	if f.JSON() {
		return f.printResult(d, "")
	}
	var b strings.Builder
	writeUsersTable(&b, d.Users)
	if err := f.printResult(nil, strings.TrimSuffix(b.String(), "\n")); err != nil {
		return err
	}
	if d.Next != "" {
		fmt.Fprintf(f.IO.ErrOut, "more accounts: %s\n", more(d.Next))
	}
	return nil
}
