package client

import (
	"testing"

	"github.com/authline/authline/protocol"
)

func TestResendableCommands(t *testing.T) {
	// Every command of the protocol is classified here, so that a new one
	// cannot slip into the resendable set (or out of it) unnoticed: only
	// reads may be sent twice.
	want := map[string]bool{
		protocol.CmdGet:    true,
		protocol.CmdWhoAmI: true,
		protocol.CmdPing:   true,
		protocol.CmdJWKS:   true,
		protocol.CmdUsers:  true,
		protocol.CmdUser:   true,

		protocol.CmdRegister: false,
		protocol.CmdLogin:    false,
		protocol.CmdLogout:   false,
		protocol.CmdQuit:     false,
		protocol.CmdRefresh:  false,
		protocol.CmdPasswd:   false,
		protocol.CmdSetRole:  false,
		protocol.CmdDisable:  false,
		protocol.CmdEnable:   false,
		protocol.CmdDelete:   false,
		protocol.CmdUnlock:   false,
		protocol.CmdRevoke:   false,
	}
	for _, cmd := range protocol.Commands {
		w, ok := want[cmd]
		if !ok {
			t.Errorf("command %s is not classified: add it to this table", cmd)
			continue
		}
		if resendable[cmd] != w {
			t.Errorf("resendable[%s] = %v, want %v", cmd, resendable[cmd], w)
		}
	}
	for cmd := range resendable {
		if _, ok := want[cmd]; !ok {
			t.Errorf("resendable lists %q, which is not a protocol command", cmd)
		}
	}
}

func TestNoteSession(t *testing.T) {
	// What a successful answer does to the session flag; doubtful cases
	// keep it as it was.
	tests := []struct {
		name   string
		req    request
		before bool
		after  bool
	}{
		{"session login", request{Cmd: protocol.CmdLogin, Mode: protocol.ModeSession}, false, true},
		{"token login keeps no session", request{Cmd: protocol.CmdLogin, Mode: protocol.ModeToken}, false, false},
		{"token login keeps the session", request{Cmd: protocol.CmdLogin, Mode: protocol.ModeToken}, true, true},
		{"logout of the session", request{Cmd: protocol.CmdLogout}, true, false},
		{"logout all of the session", request{Cmd: protocol.CmdLogout, All: true}, true, false},
		{"logout of a token", request{Cmd: protocol.CmdLogout, Token: "t"}, true, true},
		{"logout all of a token", request{Cmd: protocol.CmdLogout, All: true, Token: "t"}, true, true},
		{"passwd of the session", request{Cmd: protocol.CmdPasswd}, true, true},
		{"get", request{Cmd: protocol.CmdGet}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l link
			l.session.Store(tt.before)
			noteSession(&l, &tt.req)
			if got := l.session.Load(); got != tt.after {
				t.Fatalf("session = %v, want %v", got, tt.after)
			}
		})
	}
}
