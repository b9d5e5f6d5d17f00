package ssh

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/creack/pty"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// session is one "session" channel: at most one program (exec, shell or subsystem).
type session struct {
	srv *Server
	cfg Config
	cc  *ConnContext
	ch  gossh.Channel
	env []string

	// wmu orders writes made outside the output copies (the shutdown notice) with
	// CloseWrite: x/crypto/ssh does not guard a channel's EOF flag against a
	// concurrent write.
	wmu sync.Mutex

	mu        sync.Mutex
	pty       *PtyRequest // requested terminal, nil if none
	ptyFile   *os.File    // the PTY master while a program runs on it
	proc      *os.Process
	procStart uint64 // the program's start time (/proc stat), to tell a reused PID
	started   bool
	finished  chan struct{} // closed (by markFinished) when the program's result was sent
	finOnce   sync.Once
	ending    bool // the server is shutting down

	// pending are goroutines a request started but that may only run once its reply
	// is sent: they can end the channel (a fast program's exit status and close), and
	// a close before the reply makes the client's request fail. Only the request loop
	// touches it.
	pending []func()
}

// later queues f to run on its own goroutine once the current request is answered.
func (se *session) later(f func()) { se.pending = append(se.pending, f) }

// run runs one of the session's goroutines. A panic is logged and ends this session
// only: the channel closes, and the request loop no longer waits for a result that
// will not come.
func (se *session) run(f func()) {
	defer func() {
		if r := recover(); r != nil {
			se.srv.log.Error("ssh session goroutine panicked", "peer", se.cc.Peer.Name(), "panic", r)
			se.ch.Close()
			se.markFinished()
		}
	}()
	f()
}

// markFinished closes finished, once.
func (se *session) markFinished() { se.finOnce.Do(func() { close(se.finished) }) }

// serveSession is the ChannelHandler of "session" channels.
func (s *Server) serveSession(ctx context.Context, cc *ConnContext, nch gossh.NewChannel) {
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	se := &session{srv: s, cfg: s.Config(), cc: cc, ch: ch, finished: make(chan struct{})}
	sc := cc.server
	if sc != nil {
		if !sc.addSession(se) {
			ch.Close()
			go gossh.DiscardRequests(reqs)
			return
		}
		defer sc.removeSession(se)
	}
	defer ch.Close()
	for req := range reqs {
		ok := se.handle(ctx, req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
		for _, f := range se.pending {
			go se.run(f)
		}
		se.pending = nil
	}
	// The client closed the channel or vanished: end whatever still runs.
	se.hangup()
	se.mu.Lock()
	started := se.started
	se.mu.Unlock()
	if started {
		<-se.finished
	}
}

// shellAllowed reports whether terminal requests are allowed for this peer.
func (se *session) shellAllowed() bool {
	return se.cfg.Shell && se.cc.CurrentPeer().Allows(core.ScopeSSHShell)
}

func (se *session) deny(what string) bool {
	se.srv.log.Warn("ssh request refused", "request", what, "peer", se.cc.Peer.Name(), "transport", se.cc.Transport)
	return false
}

// handle answers one channel request.
func (se *session) handle(ctx context.Context, req *gossh.Request) bool {
	switch req.Type {
	case "env":
		name, value, err := ParseEnv(req.Payload)
		if err != nil || !envAllowed(se.cfg.Env, name) || len(se.env) >= 64 {
			return false
		}
		se.mu.Lock()
		defer se.mu.Unlock()
		if se.started {
			return false
		}
		se.env = append(se.env, name+"="+value)
		return true
	case "pty-req":
		if !se.shellAllowed() {
			return se.deny(req.Type)
		}
		p, err := ParsePtyRequest(req.Payload)
		if err != nil {
			return false
		}
		se.mu.Lock()
		defer se.mu.Unlock()
		if se.started || se.pty != nil {
			return false
		}
		se.pty = &p
		return true
	case "window-change":
		if !se.shellAllowed() {
			return false
		}
		w, err := ParseWindowChange(req.Payload)
		if err != nil {
			return false
		}
		return se.resize(w.Cols, w.Rows, w.WidthPixels, w.HeightPixels)
	case "signal":
		if !se.shellAllowed() {
			return se.deny(req.Type)
		}
		name, err := ParseString(req.Payload)
		if err != nil {
			return false
		}
		sig, ok := signalByName[name]
		if !ok {
			return false
		}
		return se.signal(sig)
	case "exec":
		command, err := ParseString(req.Payload)
		if err != nil {
			return false
		}
		if args, ok := SplitCommand(command); ok {
			if h := se.srv.ExecHandlers[args[0]]; h != nil {
				if !se.cc.CurrentPeer().Allows(core.ScopeSSHExec + ":" + args[0]) {
					return se.deny(req.Type + " " + truncate(args[0], 32))
				}
				return se.execHook(ctx, h, args)
			}
		}
		if !se.cc.CurrentPeer().Allows(core.ScopeSSHExec) {
			return se.deny(req.Type)
		}
		return se.start(exec.Command(se.cfg.Command, "-c", command))
	case "shell":
		if !se.shellAllowed() {
			return se.deny(req.Type)
		}
		cmd := exec.Command(se.cfg.LoginShell)
		cmd.Args[0] = "-" + filepath.Base(se.cfg.LoginShell) // a login shell, as sshd starts it
		return se.start(cmd)
	case "subsystem":
		name, err := ParseString(req.Payload)
		if err != nil {
			return false
		}
		h := se.srv.Subsystems[name]
		if h == nil || !se.cc.CurrentPeer().Allows("ssh:"+name) {
			return se.deny(req.Type + " " + truncate(name, 32))
		}
		return se.subsystem(ctx, h)
	case "x11-req", "auth-agent-req@openssh.com":
		return se.deny(req.Type)
	default:
		return false
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// claim marks the session as running a program; only the first one may run.
func (se *session) claim() bool {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.started || se.ending {
		return false
	}
	se.started = true
	return true
}

func (se *session) subsystem(ctx context.Context, h SubsystemHandler) bool {
	if !se.claim() {
		return false
	}
	se.later(func() {
		defer se.markFinished()
		code := uint32(0)
		func() {
			defer func() {
				if r := recover(); r != nil {
					se.srv.log.Error("ssh subsystem panicked", "panic", r)
					code = 1
				}
			}()
			if err := h(ctx, se.ch, se.cc.CurrentPeer()); err != nil {
				code = 1
			}
		}()
		se.ch.SendRequest("exit-status", false, exitStatusPayload(code))
		se.ch.Close()
	})
	return true
}

// environ is the program's environment: a minimal login environment plus what the
// client set through the allow-list.
func (se *session) environ() []string {
	env := []string{"PATH=" + defaultPath()}
	if u, err := user.Current(); err == nil {
		env = append(env, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	if home, err := os.UserHomeDir(); err == nil {
		env = append(env, "HOME="+home)
	}
	env = append(env, "SHELL="+se.cfg.LoginShell, "ALKNET_PEER="+se.cc.Peer.Name())
	if se.pty != nil && se.pty.Term != "" {
		env = append(env, "TERM="+se.pty.Term)
	}
	return append(env, se.env...)
}

func defaultPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return "/usr/local/bin:/usr/bin:/bin"
}

// start runs cmd for this session, on a PTY if one was requested.
func (se *session) start(cmd *exec.Cmd) bool {
	if !se.claim() {
		return false
	}
	se.mu.Lock()
	cmd.Env = se.environ()
	withPty := se.pty != nil
	se.mu.Unlock()
	cmd.Dir = se.cfg.Dir
	var err error
	if withPty {
		err = se.startPty(cmd)
	} else {
		err = se.startPipes(cmd)
	}
	if err != nil {
		se.srv.log.Warn("ssh: cannot start program", "err", err)
		fmt.Fprintf(se.ch.Stderr(), "alknet: cannot start %s: %v\r\n", cmd.Path, err)
		se.markFinished()
		return false
	}
	return true
}

func (se *session) startPipes(cmd *exec.Cmd) error {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return err
	}
	files = append(files, inR, inW)
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll()
		return err
	}
	files = append(files, outR, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll()
		return err
	}
	files = append(files, errR, errW)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // its own session and process group
	if err := cmd.Start(); err != nil {
		closeAll()
		return err
	}
	inR.Close()
	outW.Close()
	errW.Close()
	se.mu.Lock()
	se.proc, se.procStart = cmd.Process, startTime(cmd.Process.Pid)
	se.mu.Unlock()

	se.later(func() {
		io.Copy(inW, se.ch)
		inW.Close()
	})
	var out sync.WaitGroup
	out.Add(2)
	se.later(func() {
		defer out.Done()
		io.Copy(se.ch, outR)
		outR.Close()
	})
	se.later(func() {
		defer out.Done()
		io.Copy(se.ch.Stderr(), errR)
		errR.Close()
	})
	se.later(func() {
		err := cmd.Wait()
		out.Wait() // every byte of output is on the channel before the status
		se.finish(cmd, err)
	})
	return nil
}

func (se *session) startPty(cmd *exec.Cmd) error {
	master, tty, err := openPty()
	if err != nil {
		return err
	}
	se.mu.Lock()
	p := *se.pty
	se.mu.Unlock()
	setWinsize(master, p.Cols, p.Rows, p.WidthPixels, p.HeightPixels)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	err = cmd.Start()
	tty.Close()
	if err != nil {
		master.Close()
		return err
	}
	se.mu.Lock()
	se.proc, se.procStart = cmd.Process, startTime(cmd.Process.Pid)
	se.ptyFile = master
	se.mu.Unlock()

	se.later(func() {
		io.Copy(master, se.ch)
	})
	copied := make(chan struct{})
	se.later(func() {
		defer close(copied)
		io.Copy(se.ch, master) // ends with EIO once no process holds the terminal
	})
	se.later(func() {
		err := cmd.Wait()
		// What the program wrote is still in the terminal's buffer: drain it, but do
		// not wait forever for a background process that keeps the terminal open.
		select {
		case <-copied:
		case <-time.After(se.cfg.HangupGrace.Std()):
		}
		se.mu.Lock()
		se.ptyFile = nil
		se.mu.Unlock()
		master.Close()
		<-copied
		se.finish(cmd, err)
	})
	return nil
}

// finish sends the program's exit status (or signal), ends the channel and makes sure
// nothing of the program's session stays behind.
func (se *session) finish(cmd *exec.Cmd, waitErr error) {
	defer se.markFinished()
	se.wmu.Lock()
	se.ch.CloseWrite()
	se.wmu.Unlock()
	if ps := cmd.ProcessState; ps != nil {
		ws, _ := ps.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			name, known := signalName[ws.Signal()]
			if known {
				se.ch.SendRequest("exit-signal", false, exitSignalPayload(name, ws.CoreDump(), ""))
			} else {
				se.ch.SendRequest("exit-status", false, exitStatusPayload(128+uint32(ws.Signal())))
			}
		} else {
			se.ch.SendRequest("exit-status", false, exitStatusPayload(uint32(ws.ExitStatus())))
		}
	} else {
		se.ch.SendRequest("exit-status", false, exitStatusPayload(255))
	}
	se.ch.Close()
	// Leftovers (background jobs) go with the session. From here on the program's
	// process ID may be reused, so signal and hangup no longer use it.
	se.mu.Lock()
	se.proc = nil
	start := se.procStart
	se.mu.Unlock()
	reap(cmd.Process.Pid, start, se.cfg.HangupGrace.Std())
}

// reap ends what is left of a program's session sid (its process ID: every program
// starts as the leader of a new session, as sshd starts them): SIGHUP (and SIGCONT, so a
// stopped process wakes up to die) to every member, and SIGKILL after grace to those
// still there. Members are found by session ID, so background jobs that moved to a
// process group of their own are found too; only a process that left the session with
// setsid(2) escapes. leaderStart is the leader's start time: once the session has
// emptied, its ID may come back as another program's session, which must be spared.
func reap(sid int, leaderStart uint64, grace time.Duration) {
	members := sessionMembers(sid, leaderStart)
	if len(members) == 0 {
		return
	}
	for _, pid := range members {
		unix.Kill(pid, unix.SIGHUP)
		unix.Kill(pid, unix.SIGCONT)
	}
	time.AfterFunc(grace, func() {
		for _, pid := range sessionMembers(sid, leaderStart) {
			unix.Kill(pid, unix.SIGKILL)
		}
	})
}

// procStat is what reap needs from /proc/<pid>/stat.
type procStat struct {
	session int
	start   uint64
}

// sessionMembers lists the processes whose session ID is sid, from /proc. It returns
// none if a process with ID sid runs that did not start at leaderStart: the ID was
// reused. Where /proc cannot be read it falls back to the process group sid.
func sessionMembers(sid int, leaderStart uint64) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		if unix.Kill(-sid, 0) == nil {
			return []int{-sid}
		}
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		st, ok := parseStat(b)
		if !ok || st.session != sid {
			continue
		}
		if pid == sid && leaderStart != 0 && st.start != leaderStart {
			return nil // another program's session now has this ID
		}
		out = append(out, pid)
	}
	return out
}

// startTime returns the start time of process pid, or 0 if unknown.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	st, _ := parseStat(b)
	return st.start
}

// parseStat reads a /proc/<pid>/stat line: "pid (comm) state ppid pgrp session ...",
// where comm may hold spaces and parentheses and the start time is field 22.
func parseStat(b []byte) (procStat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStat{}, false
	}
	sid, err1 := strconv.Atoi(f[3])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	return procStat{session: sid, start: start}, err1 == nil && err2 == nil
}

// hangup ends a running program because the client went away: SIGHUP to its session,
// then SIGKILL after the grace period.
func (se *session) hangup() {
	se.mu.Lock()
	p, start := se.proc, se.procStart
	se.mu.Unlock()
	if p != nil {
		reap(p.Pid, start, se.cfg.HangupGrace.Std())
	}
}

// shutdown ends the session because the server is stopping.
func (se *session) shutdown() {
	se.mu.Lock()
	se.ending = true
	p, start := se.proc, se.procStart
	started := se.started
	se.mu.Unlock()
	se.notice("the server is shutting down")
	switch {
	case p != nil:
		reap(p.Pid, start, se.cfg.HangupGrace.Std())
	case started: // a subsystem: closing the channel ends it
		se.ch.Close()
	default:
		se.ch.Close()
	}
}

// notice writes "alknet: <msg>" on the session's stderr, on a line of its own.
func (se *session) notice(msg string) {
	se.wmu.Lock()
	defer se.wmu.Unlock()
	fmt.Fprintf(se.ch.Stderr(), "\r\nalknet: %s\r\n", msg)
}

// signal delivers sig to the program: to the terminal's foreground process group when
// it runs on a PTY, else to the program's process group.
func (se *session) signal(sig syscall.Signal) bool {
	se.mu.Lock()
	p, f := se.proc, se.ptyFile
	se.mu.Unlock()
	if p == nil {
		return false
	}
	pgid := p.Pid
	if f != nil {
		if fg, err := foregroundGroup(f); err == nil && fg > 0 {
			pgid = fg
		}
	}
	return unix.Kill(-pgid, sig) == nil
}

// resize applies a window change to the PTY, or records it for a PTY yet to start.
func (se *session) resize(cols, rows, wpx, hpx uint32) bool {
	se.mu.Lock()
	defer se.mu.Unlock()
	if se.pty == nil {
		return false
	}
	se.pty.Cols, se.pty.Rows, se.pty.WidthPixels, se.pty.HeightPixels = cols, rows, wpx, hpx
	if se.ptyFile != nil {
		return setWinsize(se.ptyFile, cols, rows, wpx, hpx) == nil
	}
	return true
}

// openPty opens a PTY pair. The master is switched to non-blocking mode so that
// closing it interrupts a pending read.
func openPty() (master, tty *os.File, err error) {
	m, t, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		t.Close()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), t, nil
}

func clamp16(v uint32) uint16 {
	if v > 0xffff {
		return 0xffff
	}
	return uint16(v)
}

func setWinsize(f *os.File, cols, rows, wpx, hpx uint32) error {
	ws := &unix.Winsize{Row: clamp16(rows), Col: clamp16(cols), Xpixel: clamp16(wpx), Ypixel: clamp16(hpx)}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) { ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return err
	}
	return ioErr
}

func foregroundGroup(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var pg int
	var ioErr error
	if err := rc.Control(func(fd uintptr) { pg, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPGRP) }); err != nil {
		return 0, err
	}
	return pg, ioErr
}

// Signal names of RFC 4254 section 6.10, plus job control.
var signalByName = map[string]syscall.Signal{
	"ABRT": unix.SIGABRT, "ALRM": unix.SIGALRM, "FPE": unix.SIGFPE, "HUP": unix.SIGHUP,
	"ILL": unix.SIGILL, "INT": unix.SIGINT, "KILL": unix.SIGKILL, "PIPE": unix.SIGPIPE,
	"QUIT": unix.SIGQUIT, "SEGV": unix.SIGSEGV, "TERM": unix.SIGTERM, "USR1": unix.SIGUSR1,
	"USR2": unix.SIGUSR2, "TSTP": unix.SIGTSTP, "CONT": unix.SIGCONT,
}

var signalName = func() map[syscall.Signal]string {
	m := make(map[syscall.Signal]string, len(signalByName))
	for k, v := range signalByName {
		m[v] = k
	}
	return m
}()
