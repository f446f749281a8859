package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeouts of the built-in RESP client.
const (
	dialTimeout    = 2 * time.Second
	commandTimeout = 10 * time.Second // per command; blocking commands must return sooner
)

// RespError is an error reply of the server ("-ERR ...", "-NOAUTH ...", "-MOVED 866 ...").
// Do returns it as a value, not as a failure, so that tests can assert on it.
type RespError string

func (e RespError) Error() string { return string(e) }

// Prefix is the error code: the first word of the reply, such as "ERR", "NOAUTH",
// "WRONGPASS", "MOVED" or "READONLY".
func (e RespError) Prefix() string {
	p, _, _ := strings.Cut(string(e), " ")
	return p
}

// Conn is one RESP connection to a server, as a client library would hold it. It is not
// authenticated: send AUTH yourself. Its methods are safe for concurrent use, one command at a
// time.
type Conn struct {
	addr    string
	timeout time.Duration // per command
	mu      sync.Mutex
	nc      net.Conn
	r       *bufio.Reader
}

// dial opens a connection and, when password is not empty, authenticates it. Every command
// on it, AUTH included, must be answered within timeout.
func dial(addr, password string, timeout time.Duration) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, min(dialTimeout, timeout))
	if err != nil {
		return nil, err
	}
	c := &Conn{addr: addr, timeout: timeout, nc: nc, r: bufio.NewReader(nc)}
	if password != "" {
		v, err := c.do("AUTH", password)
		if err != nil {
			c.Close()
			return nil, err
		}
		if v != "OK" {
			c.Close()
			return nil, fmt.Errorf("AUTH = %v, want OK", v)
		}
	}
	return c, nil
}

// Addr is the server's address.
func (c *Conn) Addr() string { return c.addr }

// Do runs one command and returns its reply (see Server.Do for the types). A transport or
// protocol error is fatal; call it from the test's goroutine.
func (c *Conn) Do(tb testing.TB, args ...string) any {
	tb.Helper()
	v, err := c.do(args...)
	if err != nil {
		tb.Fatalf("redistest: %s %s: %v", c.addr, commandName(args), err)
	}
	return v
}

// TryDo is Do without the testing.TB: it returns transport and protocol errors, and error
// replies as a RespError value with a nil error. Safe to call from any goroutine.
func (c *Conn) TryDo(args ...string) (any, error) { return c.do(args...) }

// Close closes the connection; it is idempotent.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

func (c *Conn) do(args ...string) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("no command")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc == nil {
		return nil, net.ErrClosed
	}
	if err := c.nc.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, err
	}
	if _, err := c.nc.Write(appendCommand(nil, args)); err != nil {
		return nil, err
	}
	v, err := readReply(c.r)
	if err != nil {
		// The stream is out of sync; nothing more can be read from it.
		c.nc.Close()
		c.nc = nil
	}
	return v, err
}

// commandName is the command for error messages, without its arguments (they may be
// passwords).
func commandName(args []string) string {
	if len(args) == 0 {
		return "(no command)"
	}
	name := strings.ToUpper(args[0])
	if len(args) > 1 && (name == "CLUSTER" || name == "SENTINEL" || name == "CONFIG" || name == "CLIENT") {
		name += " " + strings.ToUpper(args[1])
	}
	return name
}

// appendCommand encodes args as a RESP array of bulk strings.
func appendCommand(b []byte, args []string) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// maxBulk bounds the size of one bulk string or aggregate the client accepts.
const maxBulk = 512 << 20

// readReply reads one RESP2 reply (and the RESP3 types a server sends after HELLO 3):
//
//	+simple, $bulk, =verbatim, (bignum -> string
//	:integer                           -> int64
//	*array, ~set, >push                -> []any
//	%map                               -> []any (key, value, key, value, ...)
//	$-1, *-1, _                        -> nil
//	-error, !bulk error                -> RespError
//	#t / #f                            -> bool
//	,double                            -> float64
func readReply(r *bufio.Reader) (any, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if len(line) == 0 {
		return nil, errors.New("protocol error: empty reply line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+':
		return rest, nil
	case '-':
		return RespError(rest), nil
	case ':':
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("protocol error: bad integer %q", rest)
		}
		return n, nil
	case '$', '=', '!':
		n, err := parseLen(rest)
		if err != nil || n < 0 {
			if err == nil && n == -1 && kind == '$' {
				return nil, nil
			}
			return nil, fmt.Errorf("protocol error: bad length %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, errors.New("protocol error: bulk string not terminated by CRLF")
		}
		s := string(buf[:n])
		switch kind {
		case '=':
			if len(s) >= 4 && s[3] == ':' {
				s = s[4:] // "txt:" or "mkd:"
			}
		case '!':
			return RespError(s), nil
		}
		return s, nil
	case '*', '~', '>', '%':
		n, err := parseLen(rest)
		if err != nil || n < -1 {
			return nil, fmt.Errorf("protocol error: bad length %q", line)
		}
		if n == -1 {
			return nil, nil
		}
		if kind == '%' {
			n *= 2
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return a, nil
	case '_':
		return nil, nil
	case '#':
		switch rest {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return nil, fmt.Errorf("protocol error: bad boolean %q", rest)
	case ',':
		f, err := strconv.ParseFloat(strings.NewReplacer("inf", "Inf", "nan", "NaN").Replace(rest), 64)
		if err != nil {
			return nil, fmt.Errorf("protocol error: bad double %q", rest)
		}
		return f, nil
	case '(':
		return rest, nil
	}
	return nil, fmt.Errorf("protocol error: unknown reply type %q", kind)
}

func parseLen(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n > maxBulk {
		return 0, fmt.Errorf("length %d too large", n)
	}
	return n, nil
}

// readLine reads one CRLF-terminated line without its CRLF.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		if err == io.EOF && line != "" {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return "", fmt.Errorf("protocol error: line not terminated by CRLF: %q", line)
	}
	return line[:len(line)-2], nil
}
