package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/authline/authline/protocol"
)

type demoOptions struct {
	*Factory
	AdminUser          string
	AdminPasswordStdin bool
}

func newDemoCmd(f *Factory) *cobra.Command {
	opts := &demoOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Walk through the tutorial scenario against a server",
		Long: `Run the tutorial scenario against the server and show, for every step, the
expected and the actual status:

  register a fresh random user (demo-XXXXXXXX)    201
  register it again                               409
  log in (token mode)                             200
  get protected with the token                    200
  get admin with the token                        403
  log in with a wrong password                    401
  get protected without a token                   401
  get protected with a garbage token              401
  log out (revoke the token)                      200
  get protected with the revoked token            401

With --admin-user it also logs in as that admin (password from a no-echo
prompt or --admin-password-stdin) and gets admin (200).

demo leaves the saved credentials alone. It exits 0 when every step gave the
expected status and 1 otherwise.`,
		Example: `  authline demo
  printf '%s\n' "$ADMIN_PASSWORD" | authline demo --admin-user root --admin-password-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.AdminPasswordStdin && opts.AdminUser == "" {
				return usageErrorf("--admin-password-stdin needs --admin-user")
			}
			return runDemo(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.AdminUser, "admin-user", "", "also check the admin resource as this admin user")
	cmd.Flags().BoolVar(&opts.AdminPasswordStdin, "admin-password-stdin", false, "read the admin password from the first line of stdin")
	return cmd
}

// demoStep is the outcome of one step.
type demoStep struct {
	Step string        `json:"step"`
	Want int           `json:"want"`
	Got  int           `json:"got"`
	Code protocol.Code `json:"code,omitempty"` // the error code, when refused
	OK   bool          `json:"ok"`
}

type demoResult struct {
	Server string     `json:"server"`
	User   string     `json:"user"`
	OK     bool       `json:"ok"`
	Passed int        `json:"passed"`
	Failed int        `json:"failed"`
	Steps  []demoStep `json:"steps"`
}

func runDemo(ctx context.Context, opts *demoOptions) error {
	var adminPW string
	if opts.AdminUser != "" {
		var err error
		adminPW, err = readPassword(opts.IO, opts.AdminPasswordStdin, "--admin-password-stdin",
			fmt.Sprintf("Password for %s: ", opts.AdminUser), false)
		if err != nil {
			return err
		}
	}
	user, pw := "demo-"+randomHex(4), randomHex(12)

	c, err := opts.Connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if !opts.JSON() {
		name, version := c.Server()
		fmt.Fprintf(opts.IO.Out, "demo against %s (%s %s) as %s\n", opts.Server, name, version, user)
	}

	// The steps run in order and share the token; each says which status
	// it expects and which one success would be.
	var token, adminToken string
	type step struct {
		name         string
		want, onSucc int
		do           func(context.Context) error
	}
	steps := []step{
		{"register " + user, 201, 201, func(ctx context.Context) error {
			_, err := c.Register(ctx, user, pw)
			return err
		}},
		{"register " + user + " again", 409, 201, func(ctx context.Context) error {
			_, err := c.Register(ctx, user, pw)
			return err
		}},
		{"login " + user + " (token mode)", 200, 200, func(ctx context.Context) error {
			l, err := c.Login(ctx, user, pw, protocol.ModeToken)
			if err == nil {
				token = l.Token
			}
			return err
		}},
		{"get protected with the token", 200, 200, func(ctx context.Context) error {
			_, err := c.Get(ctx, protocol.ResourceProtected, token)
			return err
		}},
		{"get admin with the token (role user)", 403, 200, func(ctx context.Context) error {
			_, err := c.Get(ctx, protocol.ResourceAdmin, token)
			return err
		}},
		{"login " + user + " with a wrong password", 401, 200, func(ctx context.Context) error {
			_, err := c.Login(ctx, user, pw+"-wrong", protocol.ModeToken)
			return err
		}},
		{"get protected without a token", 401, 200, func(ctx context.Context) error {
			_, err := c.Get(ctx, protocol.ResourceProtected, "")
			return err
		}},
		{"get protected with a garbage token", 401, 200, func(ctx context.Context) error {
			_, err := c.Get(ctx, protocol.ResourceProtected, "garbage."+randomHex(8)+".token")
			return err
		}},
		{"logout (revoke the token)", 200, 200, func(ctx context.Context) error {
			return c.Logout(ctx, token)
		}},
		{"get protected with the revoked token", 401, 200, func(ctx context.Context) error {
			_, err := c.Get(ctx, protocol.ResourceProtected, token)
			return err
		}},
	}
	if opts.AdminUser != "" {
		steps = append(steps,
			step{"login " + opts.AdminUser + " (token mode)", 200, 200, func(ctx context.Context) error {
				l, err := c.Login(ctx, opts.AdminUser, adminPW, protocol.ModeToken)
				if err == nil {
					adminToken = l.Token
				}
				return err
			}},
			step{"get admin with the admin's token", 200, 200, func(ctx context.Context) error {
				_, err := c.Get(ctx, protocol.ResourceAdmin, adminToken)
				return err
			}},
		)
	}

	res := demoResult{Server: opts.Server, User: user, Steps: []demoStep{}}
	for i, s := range steps {
		rctx, cancel := opts.WithTimeout(ctx)
		err := s.do(rctx)
		cancel()
		r := demoStep{Step: s.name, Want: s.want, Got: s.onSucc}
		var pe *protocol.Error
		switch {
		case errors.As(err, &pe):
			r.Got, r.Code = pe.Status(), pe.Code
		case err != nil:
			// Without a connection no later step can run.
			return err
		}
		r.OK = r.Got == r.Want
		res.Steps = append(res.Steps, r)
		if r.OK {
			res.Passed++
		} else {
			res.Failed++
		}
		if !opts.JSON() {
			fmt.Fprintln(opts.IO.Out, formatStep(i+1, r))
		}
	}
	res.OK = res.Failed == 0
	// Leave politely; a failure here changes nothing about the outcome.
	qctx, cancel := opts.WithTimeout(ctx)
	defer cancel()
	c.Quit(qctx)

	if opts.JSON() {
		if err := writeJSON(opts.IO.Out, res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(opts.IO.Out, "all %d steps passed\n", len(res.Steps))
	} else {
		fmt.Fprintf(opts.IO.Out, "%d of %d steps FAILED\n", res.Failed, len(res.Steps))
	}
	if !res.OK {
		return &exitError{code: exitRefused}
	}
	return nil
}

// formatStep renders a step as "✓  3. name   expected 200, got 200".
func formatStep(n int, r demoStep) string {
	mark := "✓"
	if !r.OK {
		mark = "FAIL"
	}
	got := fmt.Sprint(r.Got)
	if r.Code != "" {
		got += " " + string(r.Code)
	}
	return fmt.Sprintf("%-4s %2d. %-44s expected %d, got %s", mark, n, r.Step, r.Want, got)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}
