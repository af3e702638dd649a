package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/store"
	"github.com/authline/authline/server/store/storeopen"
)

func newUserCmd(g *globalOptions, streams Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage users in the store (works on --db, also while the server runs)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return usageErrorf("unknown command %q for \"authlined user\"", args[0])
		},
	}
	cmd.AddCommand(
		newUserAddCmd(g, streams),
		newUserListCmd(g, streams),
		newUserSetRoleCmd(g, streams),
		newUserDeleteCmd(g, streams),
		newUserUnlockCmd(g, streams),
	)
	return cmd
}

// auditLog records offline account changes on stderr, in the same
// structured form as the server's security events.
func auditLog(streams Streams) *slog.Logger {
	return slog.New(slog.NewTextHandler(streams.ErrOut, nil))
}

// withStore opens --db for the length of fn. Only `user add` may create
// the database: for the others a mistyped --db is an error, not a new
// empty store.
func withStore(ctx context.Context, g *globalOptions, create bool, fn func(store.Store) error) error {
	if path, isFile := storeopen.SQLitePath(g.db); isFile && !create {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no database at %s (set --db or AUTHLINE_DB): %w", path, err)
		}
	}
	st, err := storeopen.Open(ctx, g.db)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	err = fn(st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return err
}

type userAddOptions struct {
	*globalOptions
	streams       Streams
	username      string
	role          string
	passwordStdin bool
	bcryptCost    int
}

func newUserAddCmd(g *globalOptions, streams Streams) *cobra.Command {
	opts := &userAddOptions{globalOptions: g, streams: streams}
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user (the only way to create an admin)",
		Long: `Add a user. The password is prompted for twice without echo on a terminal,
or read from the first line of standard input with --password-stdin. It is
never taken from a flag, so it stays out of shell history and ps.`,
		Example: `  authlined user add alice --role admin
  printf '%s\n' "$ADMIN_PASSWORD" | authlined user add alice --role admin --password-stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.username = args[0]
			return runUserAdd(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.role, "role", store.RoleUser, "role: user or admin")
	cmd.Flags().BoolVar(&opts.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	cmd.Flags().IntVar(&opts.bcryptCost, "bcrypt-cost", auth.DefaultBcryptCost, "bcrypt work factor (4-31)")
	return cmd
}

func runUserAdd(ctx context.Context, opts *userAddOptions) error {
	name, err := auth.NormalizeUsername(opts.username)
	if err != nil {
		return usageError{err}
	}
	if !store.ValidRole(opts.role) {
		return usageErrorf("--role must be %q or %q", store.RoleUser, store.RoleAdmin)
	}
	password, err := readNewPassword(opts.streams, opts.passwordStdin)
	if err != nil {
		return err
	}
	if pw, err := auth.NormalizePassword(password); err != nil {
		return usageError{err}
	} else if err := auth.CheckPasswordPolicy(name, string(pw)); err != nil {
		return usageError{err}
	}
	hash, err := auth.HashPassword(password, opts.bcryptCost)
	if err != nil {
		return usageError{err}
	}
	return withStore(ctx, opts.globalOptions, true, func(st store.Store) error {
		err := st.CreateUser(ctx, store.User{Username: name, PasswordHash: hash, Role: opts.role, CreatedAt: time.Now(), Generation: auth.NewGeneration()})
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("user %s already exists", name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(opts.streams.Out, "added %s (role %s)\n", name, opts.role)
		auditLog(opts.streams).Info("user added", "user", name, "role", opts.role, "via", "authlined user add")
		return nil
	})
}

// readNewPassword reads a password from stdin's first line, or prompts
// twice without echo on a terminal.
func readNewPassword(streams Streams, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(streams.In).ReadString('\n')
		if err != nil && line == "" {
			return "", usageErrorf("--password-stdin: no password on standard input")
		}
		return strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"), nil
	}
	if !streams.isTerminal() {
		return "", usageErrorf("standard input is not a terminal: pass the password on standard input with --password-stdin")
	}
	fd := int(streams.In.(interface{ Fd() uintptr }).Fd())
	fmt.Fprint(streams.ErrOut, "Password: ")
	p1, err := term.ReadPassword(fd)
	fmt.Fprintln(streams.ErrOut)
	if err != nil {
		return "", err
	}
	fmt.Fprint(streams.ErrOut, "Repeat password: ")
	p2, err := term.ReadPassword(fd)
	fmt.Fprintln(streams.ErrOut)
	if err != nil {
		return "", err
	}
	if string(p1) != string(p2) {
		return "", errors.New("passwords do not match")
	}
	return string(p1), nil
}

func newUserListCmd(g *globalOptions, streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), g, false, func(st store.Store) error {
				users, err := st.ListUsers(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(streams.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "USERNAME\tROLE\tCREATED")
				for _, u := range users {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Username, u.Role, u.CreatedAt.UTC().Format(time.RFC3339))
				}
				return tw.Flush()
			})
		},
	}
}

func newUserSetRoleCmd(g *globalOptions, streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "set-role NAME ROLE",
		Short: "Change a user's role (user or admin)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := auth.NormalizeUsername(args[0])
			if err != nil {
				return usageError{err}
			}
			role := args[1]
			if !store.ValidRole(role) {
				return usageErrorf("ROLE must be %q or %q", store.RoleUser, store.RoleAdmin)
			}
			return withStore(cmd.Context(), g, false, func(st store.Store) error {
				if err := st.SetRole(cmd.Context(), name, role); err != nil {
					return notFound(name, err)
				}
				fmt.Fprintf(streams.Out, "%s is now %s\n", name, role)
				auditLog(streams).Info("role changed", "user", name, "role", role, "via", "authlined user set-role")
				return nil
			})
		},
	}
}

func newUserDeleteCmd(g *globalOptions, streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := auth.NormalizeUsername(args[0])
			if err != nil {
				return usageError{err}
			}
			return withStore(cmd.Context(), g, false, func(st store.Store) error {
				if err := st.DeleteUser(cmd.Context(), name); err != nil {
					return notFound(name, err)
				}
				fmt.Fprintf(streams.Out, "deleted %s\n", name)
				auditLog(streams).Info("user deleted", "user", name, "via", "authlined user delete")
				return nil
			})
		},
	}
}

func notFound(name string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("no user %s", name)
	case errors.Is(err, store.ErrLastAdmin):
		return fmt.Errorf("refused: %s is the last enabled admin; make another admin first", name)
	}
	return err
}

func newUserUnlockCmd(g *globalOptions, streams Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock NAME",
		Short: "Clear a username's failed-login counters (from every address), lifting its throttling",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Counters exist for names as typed, users or not, so any
			// name is accepted here.
			name := strings.ToLower(args[0])
			return withStore(cmd.Context(), g, false, func(st store.Store) error {
				n, err := st.ClearLoginFailures(cmd.Context(), name)
				if err != nil {
					return err
				}
				fmt.Fprintf(streams.Out, "unlocked %s (%d failed-login counters cleared)\n", name, n)
				auditLog(streams).Info("user unlocked", "user", name, "counters", n, "via", "authlined user unlock")
				return nil
			})
		},
	}
}
