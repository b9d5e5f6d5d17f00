package ssh

import (
	"context"
	"strings"
)

// SplitCommand splits a command line into words as a POSIX shell does for a simple
// command: blanks separate words, and single quotes, double quotes and backslashes
// quote. It reports false for anything a shell would treat specially (operators,
// redirections, expansions, globs, comments) or for unbalanced quotes, so that a
// command it accepts means the same to a shell and to an [ExecHandler].
func SplitCommand(s string) ([]string, bool) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, false
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '$', '`':
					return nil, false
				case '\\':
					if i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
						i++
					}
				}
				w.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, false
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, false
			}
			i++
			if s[i] != '\n' {
				w.WriteByte(s[i])
			}
			inWord = true
		case strings.IndexByte("|&;<>()$`*?[]{}~!\n\r", c) >= 0,
			c == '#' && !inWord,         // a comment
			c == '=' && len(words) == 0: // an assignment before the command
			return nil, false
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, len(words) > 0
}

// execHook runs an ExecHandler for this session.
func (se *session) execHook(ctx context.Context, h ExecHandler, args []string) bool {
	if !se.claim() {
		return false
	}
	se.later(func() {
		defer se.markFinished()
		code := 1
		func() {
			defer func() {
				if r := recover(); r != nil {
					se.srv.log.Error("ssh exec handler panicked", "program", args[0], "panic", r)
					code = 1
				}
			}()
			code = h(ctx, se.ch, se.ch.Stderr(), se.cc.CurrentPeer(), args)
		}()
		se.wmu.Lock()
		se.ch.CloseWrite()
		se.wmu.Unlock()
		se.ch.SendRequest("exit-status", false, exitStatusPayload(uint32(code)))
		se.ch.Close()
	})
	return true
}
