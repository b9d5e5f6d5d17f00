package forward

import (
	"io"
	"net"
	"os"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// channelStream adapts an SSH channel to core.Stream. SSH channels have no deadlines, so
// reads go through a pump goroutine that a deadline can abandon (the data waits for the
// next Read), and a write deadline that passes while a Write is blocked on the channel
// window closes the channel.
type channelStream struct {
	ch     gossh.Channel
	local  net.Addr
	remote net.Addr

	chunks  chan []byte // from the pump; closed at end of stream
	pending []byte
	readErr error
	closed  chan struct{}
	once    sync.Once

	rd, wd deadline
	rmu    sync.Mutex
	wmu    sync.Mutex
}

func newChannelStream(ch gossh.Channel, conn gossh.Conn) *channelStream {
	s := &channelStream{ch: ch, chunks: make(chan []byte), closed: make(chan struct{})}
	if conn != nil {
		s.local, s.remote = conn.LocalAddr(), conn.RemoteAddr()
	}
	s.rd.init()
	s.wd.init()
	go s.pump()
	return s
}

func (s *channelStream) pump() {
	defer close(s.chunks)
	for {
		buf := make([]byte, 32<<10)
		n, err := s.ch.Read(buf)
		if n > 0 {
			select {
			case s.chunks <- buf[:n]:
			case <-s.closed:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (s *channelStream) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if len(s.pending) == 0 {
		if s.readErr != nil {
			return 0, s.readErr
		}
		select {
		case <-s.closed:
			return 0, net.ErrClosed
		default:
		}
		select {
		case b, ok := <-s.chunks:
			if !ok {
				s.readErr = io.EOF
				return 0, s.readErr
			}
			s.pending = b
		case <-s.rd.expired():
			return 0, os.ErrDeadlineExceeded
		case <-s.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func (s *channelStream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	select {
	case <-s.wd.expired():
		return 0, os.ErrDeadlineExceeded
	default:
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-s.wd.expired():
			s.ch.Close()
		case <-done:
		}
	}()
	n, err := s.ch.Write(p)
	if err != nil {
		select {
		case <-s.wd.expired():
			return n, os.ErrDeadlineExceeded
		default:
		}
	}
	return n, err
}

func (s *channelStream) CloseWrite() error { return s.ch.CloseWrite() }

func (s *channelStream) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		err = s.ch.Close()
	})
	return err
}

func (s *channelStream) LocalAddr() net.Addr  { return s.local }
func (s *channelStream) RemoteAddr() net.Addr { return s.remote }

func (s *channelStream) SetDeadline(t time.Time) error {
	s.rd.set(t)
	s.wd.set(t)
	return nil
}

func (s *channelStream) SetReadDeadline(t time.Time) error  { s.rd.set(t); return nil }
func (s *channelStream) SetWriteDeadline(t time.Time) error { s.wd.set(t); return nil }

// deadline is a settable point in time whose expiry closes a channel.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{} // closed when the deadline passes
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // the timer fired: wait for it to close ch
	}
	d.timer = nil
	select {
	case <-d.ch:
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	if dur := time.Until(t); dur > 0 {
		ch := d.ch
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	close(d.ch)
}

func (d *deadline) expired() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}
