package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/authline/authline/client"
	"github.com/authline/authline/protocol"
)

type statusOptions struct {
	*Factory
	// OnlyServer: --server was given, so only its login is shown.
	OnlyServer bool
}

func newStatusCmd(f *Factory) *cobra.Command {
	opts := &statusOptions{Factory: f}
	return &cobra.Command{
		Use:   "status",
		Short: "Show the saved logins and whether the servers accept them",
		Long: `Show every login saved in the credentials file (one per server), or with
--server only the one for that server: whom it is for, when its access
token and its refresh token expire, and whether the server accepts it.

Each server is asked WHOAMI with the saved token, as "authline whoami"
would: an access token that has expired is renewed with the refresh token
first (and the new pair saved), which status reports as "renewed". States:

  valid        the server accepts the login
  expired      the access token expired and could not be renewed: log in again
  invalid      the server refused the token (revoked, logged out everywhere,
               password changed, account disabled or deleted): log in again
  unreachable  the server could not be reached
  error        the server could not check it now (rate limited, unavailable)

Exit status 0 when every login shown is valid; 1 when one is not, or when
there is no saved login (to show).`,
		Example: `  authline status
  authline status --server auth.example.com:7411
  authline status -o json | jq -r '.servers[] | select(.valid | not) | .server'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.OnlyServer = cmd.Flags().Changed("server")
			return runStatus(cmd.Context(), opts)
		},
	}
}

// Login states in status output.
const (
	stateValid       = "valid"
	stateExpired     = "expired"
	stateInvalid     = "invalid"
	stateUnreachable = "unreachable"
	stateError       = "error"
)

// statusLogin is one saved login as status reports it.
type statusLogin struct {
	Server   string `json:"server"`
	Username string `json:"username"`
	// Role is the one the server reports (valid logins only).
	Role  string `json:"role,omitempty"`
	State string `json:"state"`
	Valid bool   `json:"valid"`
	// Renewed: the access token had expired and was renewed (and saved).
	Renewed          bool      `json:"renewed"`
	ExpiresAt        time.Time `json:"expires_at,omitzero"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	// Error, Message and Hint say what went wrong, unless valid: Error is
	// the server's code or one of the JSON error codes.
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
	Hint    string `json:"hint,omitempty"`
}

// statusResult is the JSON output of status. With no saved login to
// show, Servers is empty and Error, Message and Hint say so.
type statusResult struct {
	OK      bool          `json:"ok"`
	Servers []statusLogin `json:"servers"`
	Error   string        `json:"error,omitempty"`
	Message string        `json:"message,omitempty"`
	Hint    string        `json:"hint,omitempty"`
}

func runStatus(ctx context.Context, opts *statusOptions) error {
	creds, _, err := loadCredentials()
	if err != nil {
		return err
	}
	var addrs []string
	for addr, l := range creds.Servers {
		if l.Token != "" && (!opts.OnlyServer || addr == opts.Server) {
			addrs = append(addrs, addr)
		}
	}
	sort.Strings(addrs)
	if len(addrs) == 0 {
		err := errNotLoggedIn(opts.Server)
		if !opts.OnlyServer {
			err = withHint(&codedError{codeNotLoggedIn, errors.New("not logged in to any server")}, loginHint)
		}
		if !opts.JSON() {
			return err
		}
		o := newErrorObject(err)
		writeJSON(opts.IO.Out, statusResult{Servers: []statusLogin{}, Error: o.Error, Message: o.Message, Hint: o.Hint})
		return &exitError{code: exitRefused}
	}

	// The servers are asked at once: an unreachable one costs --timeout.
	res := statusResult{OK: true, Servers: make([]statusLogin, len(addrs))}
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() { res.Servers[i] = checkLogin(ctx, opts.Factory, addr, creds.Servers[addr]) })
	}
	wg.Wait()
	for _, l := range res.Servers {
		res.OK = res.OK && l.Valid
	}

	if opts.JSON() {
		writeJSON(opts.IO.Out, res)
	} else {
		var b strings.Builder
		for i, l := range res.Servers {
			if i > 0 {
				b.WriteString("\n")
			}
			writeStatusText(&b, l, time.Now())
		}
		fmt.Fprint(opts.IO.Out, b.String())
	}
	if !res.OK {
		return &exitError{code: exitRefused}
	}
	return nil
}

// checkLogin asks the server at addr whom saved belongs to.
func checkLogin(ctx context.Context, f *Factory, addr string, saved savedLogin) statusLogin {
	l := statusLogin{
		Server: addr, Username: saved.Username,
		ExpiresAt: saved.ExpiresAt, RefreshExpiresAt: saved.RefreshExpiresAt,
	}
	sf := &Factory{
		IO: f.IO, Server: addr, TLS: f.TLS, CAFile: f.CAFile, InsecureSkipVerify: f.InsecureSkipVerify,
		Output: f.Output, Timeout: f.Timeout, tlsConfig: f.tlsConfig, running: true,
	}
	tc, err := sf.connectAs(ctx, saved)
	if err == nil {
		var w *protocol.WhoAmIData
		err = tc.do(ctx, func(ctx context.Context, c *client.Client, token string) (err error) {
			w, err = c.WhoAmI(ctx, token)
			return err
		})
		tc.Close()
		if tc.saved.Token != saved.Token {
			l.Renewed = true
			l.ExpiresAt, l.RefreshExpiresAt = tc.saved.ExpiresAt, tc.saved.RefreshExpiresAt
		}
		if err == nil {
			l.State, l.Valid, l.Username, l.Role = stateValid, true, w.Username, w.Role
			return l
		}
	}

	var pe *protocol.Error
	switch {
	case errors.Is(err, client.ErrSessionExpired):
		l.State = stateExpired
	case errors.Is(err, client.ErrConnection):
		l.State = stateUnreachable
	case errors.As(err, &pe) && pe.Status() == 401:
		l.State = stateInvalid
	default:
		l.State = stateError
	}
	o := newErrorObject(err)
	l.Error, l.Message = o.Error, o.Message
	if pe != nil && !errors.Is(err, client.ErrSessionExpired) {
		l.Message = errorText(pe)
	}
	login := "run authline login " + saved.Username
	if addr != f.Server {
		login += " --server " + addr
	}
	switch l.State {
	case stateExpired:
		l.Hint = "token expired: " + login
	case stateInvalid:
		l.Hint = login
	case stateUnreachable:
		l.Hint = sf.hintFor(nil, err)
	default:
		if h := sf.hintFor(nil, err); h != "" {
			l.Hint = h
		}
	}
	return l
}

// writeStatusText writes one login the way gh auth status does.
func writeStatusText(b *strings.Builder, l statusLogin, now time.Time) {
	fmt.Fprintf(b, "%s\n", l.Server)
	switch l.State {
	case stateValid:
		fmt.Fprintf(b, "  ✓ Logged in as %s (role %s); the server accepts the token\n", l.Username, l.Role)
	case stateUnreachable:
		fmt.Fprintf(b, "  ! Saved login of %s; server unreachable: %s\n", l.Username, l.Message)
	case stateError:
		fmt.Fprintf(b, "  ! Saved login of %s; the server could not check it: %s\n", l.Username, l.Message)
	default:
		fmt.Fprintf(b, "  X Saved login of %s is no longer accepted: %s\n", l.Username, l.Message)
	}
	if l.Renewed {
		fmt.Fprintf(b, "  - Access token had expired: renewed with the refresh token and saved\n")
	}
	if !l.ExpiresAt.IsZero() {
		fmt.Fprintf(b, "  - Access token %s\n", expiresText(l.ExpiresAt, now))
	}
	if !l.RefreshExpiresAt.IsZero() {
		fmt.Fprintf(b, "  - Refresh token %s\n", expiresText(l.RefreshExpiresAt, now))
	} else {
		fmt.Fprintf(b, "  - No refresh token: log in again when the access token expires\n")
	}
	if l.Hint != "" {
		fmt.Fprintf(b, "  - hint: %s\n", l.Hint)
	}
}

// expiresText is "expires 2026-05-01 12:31:30 (in 14m)" or "expired ...
// (3h ago)".
func expiresText(t, now time.Time) string {
	if d := t.Sub(now); d > 0 {
		return fmt.Sprintf("expires %s (in %s)", formatTime(t), roughDuration(d))
	}
	return fmt.Sprintf("expired %s (%s ago)", formatTime(t), roughDuration(now.Sub(t)))
}

// roughDuration is d in its two largest units: "6d23h", "14m", "45s".
func roughDuration(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		d = d.Round(time.Hour)
	case d >= time.Minute:
		d = d.Round(time.Minute)
	default:
		d = d.Round(time.Second)
	}
	days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	mins, secs := int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	switch {
	case days > 0 && hours == 0:
		return fmt.Sprintf("%dd", days)
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case hours > 0 && mins == 0:
		return fmt.Sprintf("%dh", hours)
	case hours > 0:
		return fmt.Sprintf("%dh%dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm", mins)
	}
	return fmt.Sprintf("%ds", secs)
}
