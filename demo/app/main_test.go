package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// get runs one GET request with the given headers through the demo app.
func get(tb testing.TB, path string, h http.Header) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, vs := range h {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	newHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET %s status = %d, want 200", path, rec.Code)
	}
	return rec
}

func TestPage(t *testing.T) {
	tests := []struct {
		name    string
		headers http.Header
		want    []string // substrings, in this order
		notWant []string
	}{
		{
			name: "signed in, RFC 2047 name decoded next to raw",
			headers: http.Header{
				"X-Auth-Subject":  {"b1c3f0a2"},
				"X-Auth-Name":     {"=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?="},
				"X-Auth-New-User": {"true"},
				"X-Auth-Time":     {"1605180698"},
				"Accept":          {"text/html"},
			},
			want: []string{
				"<title>trustgate demo app</title>",
				"Signed in as Åse Øvrebø",
				"New user",
				`action="/.trustgate/logout"`,
				`href="/.trustgate/me"`,
				"X-Auth-Subject", // identity table first, in the documented order
				"X-Auth-Name</td><td class=\"value\">=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?=</td><td class=\"decoded\">Åse Øvrebø",
				"X-Auth-Time</td><td class=\"value\">1605180698</td><td class=\"decoded\">2020-11-12 11:31:38 UTC",
				"All other request headers",
				"Accept",
			},
		},
		{
			name:    "not signed in",
			headers: http.Header{"Accept": {"text/html"}},
			want:    []string{"Not signed in", "no identity headers"},
			notWant: []string{"Signed in as"},
		},
		{
			name: "header values are escaped",
			headers: http.Header{
				"X-Auth-Subject": {"s"},
				"X-Auth-Name":    {`<script>alert(1)</script>`},
				"X-Evil":         {`"><script>alert(2)</script>`},
			},
			want: []string{
				"Signed in as &lt;script&gt;alert(1)&lt;/script&gt;",
				"&lt;script&gt;alert(2)&lt;/script&gt;",
			},
			notWant: []string{"<script>alert(1)", "<script>alert(2)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(t, "/some/page", tt.headers)
			body := rec.Body.String()
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
			}
			pos := 0
			for _, w := range tt.want {
				i := strings.Index(body[pos:], w)
				if i < 0 {
					t.Fatalf("page has no %q after offset %d; page:\n%s", w, pos, body)
				}
				pos += i + len(w)
			}
			for _, nw := range tt.notWant {
				if strings.Contains(body, nw) {
					t.Errorf("page contains %q, want it absent", nw)
				}
			}
		})
	}
}

func TestHeadersJSON(t *testing.T) {
	sent := http.Header{
		"X-Auth-Subject": {"123e4567-e89b-12d3-a456-426652340000"},
		"X-Auth-Name":    {"=?UTF-8?B?w4VzZSDDmHZyZWLDuA==?="},
		"X_Odd_Name":     {"kept as sent"},
		"Accept":         {"text/html", "application/json"},
		"X-Evil":         {"<script>"},
	}
	rec := get(t, "/headers.json", sent)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var got http.Header
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decoding /headers.json: %v\n%s", err, rec.Body)
	}
	if !reflect.DeepEqual(got, sent) {
		t.Errorf("/headers.json = %v, want %v", got, sent)
	}
}
