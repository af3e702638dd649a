package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/authline/authline/server/auth"
	"github.com/authline/authline/server/store"
)

// keysOptions are the flags of every keys command.
type keysOptions struct {
	*globalOptions
	streams  Streams
	tokenAlg string
	keyFile  string
}

func newKeysCmd(g *globalOptions, streams Streams) *cobra.Command {
	opts := &keysOptions{globalOptions: g, streams: streams}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the token signing keys in the store (works on --db, also while the server runs)",
		Long: `Manage the token signing keys, which live in the store (--db) and are shared
by every server on it. New tokens are signed with the newest key of the
server's --token-alg; tokens of the other keys verify until those are
retired. A running server picks up a change within its --sync-interval:
no restart.

Give the keys commands the --token-alg of the server (or set
AUTHLINE_TOKEN_ALG for both): rotate makes a key of that algorithm, and
retire refuses to retire the last one.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return usageErrorf("unknown command %q for \"authlined keys\"", args[0])
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&opts.tokenAlg, "token-alg", store.AlgHS256, "the servers' token algorithm: HS256 or EdDSA")
	pf.StringVar(&opts.keyFile, "key-file", "", "the servers' HS256 key file, imported into a store that has no key yet (default: beside --db, with extension .key)")
	cmd.AddCommand(
		newKeysListCmd(opts),
		newKeysRotateCmd(opts),
		newKeysRetireCmd(opts),
		newKeysExportCmd(opts),
	)
	return cmd
}

func (o *keysOptions) alg() (string, error) {
	alg, err := auth.ParseAlg(o.tokenAlg)
	if err != nil {
		return "", usageErrorf("--token-alg: %v", err)
	}
	return alg, nil
}

// importKeyFile adds the key file's key to a store that has no key yet,
// as `authlined serve` does on start: a command that adds the first key
// must not leave the key file's tokens without their key. A missing key
// file is fine: then no token was signed with it.
func (o *keysOptions) importKeyFile(ctx context.Context, st store.Store) error {
	path := o.keyFile
	if path == "" {
		path = defaultKeyFile(o.db)
	}
	if path == "" {
		return nil // a PostgreSQL store without --key-file: no key file
	}
	key, err := auth.LoadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return auth.ImportKeyFileKey(ctx, st, key, auditLog(o.streams))
}

func newKeysListCmd(o *keysOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the active signing keys, oldest first; \"current\" signs new tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			alg, err := o.alg()
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), o.globalOptions, false, func(st store.Store) error {
				keys, err := st.SigningKeys(cmd.Context())
				if err != nil {
					return err
				}
				current := ""
				for _, k := range keys { // oldest first: the last of alg wins
					if k.Alg == alg {
						current = k.KID
					}
				}
				tw := tabwriter.NewWriter(o.streams.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KID\tALG\tCREATED\tSTATUS")
				for _, k := range keys {
					status := "active"
					if k.KID == current {
						status = "current"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.CreatedAt.UTC().Format(time.RFC3339), status)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				switch {
				case len(keys) == 0:
					fmt.Fprintln(o.streams.ErrOut, "no signing keys in the store yet: `authlined serve` adds them on its first start")
				case current == "":
					fmt.Fprintf(o.streams.ErrOut, "no %s key: a server with --token-alg %s adds one when it starts\n", alg, alg)
				}
				return nil
			})
		},
	}
}

func newKeysRotateCmd(o *keysOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Add a new key of --token-alg; it signs new tokens from now on, older keys keep verifying",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			alg, err := o.alg()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			return withStore(ctx, o.globalOptions, false, func(st store.Store) error {
				if err := o.importKeyFile(ctx, st); err != nil {
					return err
				}
				k, err := auth.RotateSigningKey(ctx, st, alg, time.Now())
				if err != nil {
					return err
				}
				fmt.Fprintf(o.streams.Out, "added %s key %s: it signs new tokens (running servers switch within their --sync-interval); retire the old key once its tokens have expired\n", k.Alg, k.KID)
				auditLog(o.streams).Info("signing key added", "kid", k.KID, "alg", k.Alg, "via", "authlined keys rotate")
				return nil
			})
		},
	}
}

func newKeysRetireCmd(o *keysOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retire KID",
		Short: "Retire a key: tokens it signed are refused from now on",
		Long: `Retire a key: tokens it signed are refused from now on (by running servers
within their --sync-interval), and its kid is never used again. The last
key of --token-alg, which signs new tokens, cannot be retired: rotate
first. A kid that starts with '-' goes after "--":

  authlined keys retire -- -7-wUyK7qTY26NcY`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			alg, err := o.alg()
			if err != nil {
				return err
			}
			kid := args[0]
			ctx := cmd.Context()
			return withStore(ctx, o.globalOptions, false, func(st store.Store) error {
				err := auth.RetireSigningKey(ctx, st, kid, alg, time.Now())
				switch {
				case errors.Is(err, store.ErrNotFound):
					return fmt.Errorf("no active signing key %s (see authlined keys list)", kid)
				case errors.Is(err, auth.ErrLastSigningKey):
					return fmt.Errorf("refusing to retire %s: it is the only %s key, which signs new tokens; run `authlined keys rotate --token-alg %s` first", kid, alg, alg)
				case err != nil:
					return err
				}
				fmt.Fprintf(o.streams.Out, "retired %s: its tokens are refused (by running servers within their --sync-interval)\n", kid)
				auditLog(o.streams).Info("signing key retired", "kid", kid, "via", "authlined keys retire")
				return nil
			})
		},
	}
	// A kid is base64url: the key file's may start with '-', and then
	// reads as a flag.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		if strings.Contains(err.Error(), "unknown shorthand flag") {
			return usageErrorf("%v (a KID that starts with '-' goes after \"--\": authlined keys retire -- KID)", err)
		}
		return usageError{err}
	})
	return cmd
}

func newKeysExportCmd(o *keysOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Write the public keys of the EdDSA keys as a JWKS document (JSON) to standard output",
		Long: `Write the public keys that verify EdDSA tokens as a JSON Web Key Set
(RFC 7517), the same document the JWKS command returns, so that other
services can verify authline tokens without any secret. HS256 keys are
secrets and never exported: with HS256 only, the key set is empty.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd.Context(), o.globalOptions, false, func(st store.Store) error {
				keys, err := st.SigningKeys(cmd.Context())
				if err != nil {
					return err
				}
				jwks := auth.JWKS(keys)
				if len(jwks.Keys) == 0 {
					fmt.Fprintln(o.streams.ErrOut, "no EdDSA keys: HS256 tokens have no public key (serve with --token-alg EdDSA)")
				}
				_, err = o.streams.Out.Write(append(jwks.AppendJSON(nil), '\n'))
				return err
			})
		},
	}
}
