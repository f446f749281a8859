package redistest

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want any
	}{
		{name: "simple string", in: "+OK\r\n", want: "OK"},
		{name: "error", in: "-MOVED 866 127.0.0.1:7001\r\n", want: RespError("MOVED 866 127.0.0.1:7001")},
		{name: "integer", in: ":-42\r\n", want: int64(-42)},
		{name: "bulk string", in: "$5\r\nhe\r\no\r\n", want: "he\r\no"},
		{name: "empty bulk string", in: "$0\r\n\r\n", want: ""},
		{name: "null bulk string", in: "$-1\r\n", want: nil},
		{name: "null array", in: "*-1\r\n", want: nil},
		{name: "empty array", in: "*0\r\n", want: []any{}},
		{name: "nested array", in: "*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n$1\r\nb\r\n", want: []any{int64(1), []any{"a", nil}, "b"}},
		{name: "resp3 null", in: "_\r\n", want: nil},
		{name: "resp3 boolean", in: "#t\r\n", want: true},
		{name: "resp3 double", in: ",1.5\r\n", want: 1.5},
		{name: "resp3 map", in: "%1\r\n+k\r\n:2\r\n", want: []any{"k", int64(2)}},
		{name: "resp3 verbatim", in: "=8\r\ntxt:info\r\n", want: "info"},
		{name: "resp3 bulk error", in: "!3\r\nERR\r\n", want: RespError("ERR")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readReply(bufio.NewReader(strings.NewReader(tt.in)))
			if err != nil {
				t.Fatalf("readReply(%q) error: %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readReply(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestReadReplyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
	}{
		{name: "eof", in: ""},
		{name: "no crlf", in: "+OK\n"},
		{name: "unknown type", in: "?x\r\n"},
		{name: "bad integer", in: ":x\r\n"},
		{name: "short bulk", in: "$5\r\nab\r\n"},
		{name: "bulk without crlf", in: "$2\r\nabcd"},
		{name: "huge bulk", in: "$999999999999\r\n"},
		{name: "truncated array", in: "*2\r\n:1\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := readReply(bufio.NewReader(strings.NewReader(tt.in))); err == nil {
				t.Errorf("readReply(%q) = %#v, want an error", tt.in, got)
			}
		})
	}
}

func TestAppendCommand(t *testing.T) {
	t.Parallel()
	got := string(appendCommand(nil, []string{"SET", "k", "", "a\r\nb"}))
	want := "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$4\r\na\r\nb\r\n"
	if got != want {
		t.Errorf("appendCommand() = %q, want %q", got, want)
	}
}

func TestRespErrorPrefix(t *testing.T) {
	t.Parallel()
	if got := RespError("NOAUTH Authentication required.").Prefix(); got != "NOAUTH" {
		t.Errorf("Prefix() = %q, want NOAUTH", got)
	}
}

func TestQuote(t *testing.T) {
	t.Parallel()
	got := quote("a b\"c\\d\n\xff")
	want := `"a b\"c\\d\x0a\xff"`
	if got != want {
		t.Errorf("quote() = %s, want %s", got, want)
	}
}

func TestParseClusterNodes(t *testing.T) {
	t.Parallel()
	in := "e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n" +
		"67ed 127.0.0.1:30002@40002,host master - 0 1426238316232 2 connected 5461-10922\n"
	got, err := parseClusterNodes(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []clusterNode{
		{id: "e7d1", addr: "127.0.0.1:30001", flags: []string{"myself", "master"}, link: "connected"},
		{id: "67ed", addr: "127.0.0.1:30002", flags: []string{"master"}, link: "connected"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseClusterNodes() = %+v, want %+v", got, want)
	}
}

func TestPickPort(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 20 {
		p, err := pickPort(true)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || seen[p+clusterBusOffset] {
			t.Fatalf("pickPort(true) = %d, handed out before", p)
		}
		seen[p], seen[p+clusterBusOffset] = true, true
		// Whether p is still free is not checked: other test binaries on the machine may have
		// bound it since; startAll retries in that case.
		if p < lowestPort || p+clusterBusOffset > 65535 {
			t.Errorf("pickPort(true) = %d, want a port from %d whose bus port is at most 65535", p, lowestPort)
		}
		if lo := ephemeralLow(); p+clusterBusOffset >= lo {
			t.Errorf("pickPort(true) = %d, bus port in the ephemeral range from %d", p, lo)
		}
	}
}
