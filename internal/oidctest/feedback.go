package oidctest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Session feedback (BindID "Send Session Feedback", seed 001).

// FeedbackAuthScheme and feedbackAuthPrefix are the fixed start of the feedback request's
// Authorization header: "BindIdBackend AccessToken <access token>; <feedback auth value>".
const (
	FeedbackAuthScheme = "BindIdBackend"
	feedbackAuthPrefix = FeedbackAuthScheme + " AccessToken "
	// FeedbackReportAuthenticationPerformed is the only report type the Provider accepts.
	FeedbackReportAuthenticationPerformed = "authentication_performed"

	maxFeedbackReports    = 16
	maxFeedbackAliasBytes = 1024
)

// Feedback is an accepted session feedback report (LastFeedback).
type Feedback struct {
	// ClientID is the client the access token was issued to (whose secret keyed the HMAC).
	ClientID string
	// Subject is the user the access token stands for; the alias is now theirs.
	Subject string
	// Alias is the reported alias (the last authentication_performed report of the request).
	Alias string
	// Time is the report's "time" (seconds since the epoch).
	Time time.Time
}

// LastFeedback is a copy of the last accepted session feedback report; nil before any.
func (p *Provider) LastFeedback() *Feedback {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastFeedback == nil {
		return nil
	}
	f := *p.lastFeedback
	return &f
}

// FeedbackAuthValue is the seed's FEEDBACK_AUTH_VALUE: the standard, padded base64 of
// HMAC-SHA256 keyed with the client secret's bytes over the access token's bytes (UTF-8,
// as the seed's Java sample computes it).
func FeedbackAuthValue(clientSecret, accessToken string) string {
	m := hmac.New(sha256.New, []byte(clientSecret))
	m.Write([]byte(accessToken))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// handleSessionFeedback checks and records a session feedback request:
//
//   - 401 when the Authorization header is missing, repeated or not exactly
//     "BindIdBackend AccessToken <token>; <value>" (invalid_request), the token is not a
//     live access token (invalid_token), or <value> is not FeedbackAuthValue of the secret
//     of the client the token was issued to (invalid_client);
//   - 400 (invalid_request) when the body is not application/json, not the seed's shape
//     (subject_session_at, a non-empty reports array of authentication_performed reports
//     with a non-empty string alias and a numeric time), or its subject_session_at is not
//     the token of the header;
//   - 200 {} otherwise: the alias is recorded for the token's user, and later
//     authorizations of that user carry it as bindid_alias.
func (p *Provider) handleSessionFeedback(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.Feedback })
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		feedbackError(w, bodyErrorStatus(err), "invalid_request", "request body could not be read")
		return
	}
	f, _ := p.snapshot()
	if !p.wait(r, f.FeedbackDelay) {
		return
	}
	if f.FeedbackStatus != 0 {
		setNote(w, "status fault %d", f.FeedbackStatus)
		code := "invalid_request"
		switch {
		case f.FeedbackStatus == http.StatusUnauthorized:
			code = "invalid_token"
		case f.FeedbackStatus == http.StatusTooManyRequests:
			code = "slow_down"
		case f.FeedbackStatus >= 500:
			code = "server_error"
		}
		feedbackError(w, f.FeedbackStatus, code, "fault injected by oidctest")
		return
	}

	token, mac, ok := feedbackAuthorization(r)
	if !ok {
		setNote(w, "rejected: malformed Authorization")
		feedbackError(w, http.StatusUnauthorized, "invalid_request", "Authorization must be: BindIdBackend AccessToken <access token>; <base64 HMAC-SHA256>")
		return
	}
	now := p.now()
	p.mu.Lock()
	g, live := p.access.get(now, token)
	p.mu.Unlock()
	if !live {
		setNote(w, "rejected: unknown or expired access token")
		feedbackError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid or expired")
		return
	}
	client := p.clients[g.clientID]
	if !hmac.Equal([]byte(mac), []byte(FeedbackAuthValue(client.Secret, token))) {
		setNote(w, "client=%s rejected: feedback auth value does not match", client.ID)
		feedbackError(w, http.StatusUnauthorized, "invalid_client", "the feedback auth value is not the HMAC-SHA256 of the access token keyed with the client secret")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		feedbackError(w, http.StatusBadRequest, "invalid_request", "Content-Type must be application/json")
		return
	}
	subjectAT, reports, err := parseFeedbackBody(body)
	if err != nil {
		setNote(w, "client=%s rejected: %v", client.ID, err)
		feedbackError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if !hmac.Equal([]byte(subjectAT), []byte(token)) {
		setNote(w, "client=%s rejected: subject_session_at is not the header's token", client.ID)
		feedbackError(w, http.StatusBadRequest, "invalid_request", "subject_session_at is not the access token of the Authorization header")
		return
	}
	last := reports[len(reports)-1]
	p.mu.Lock()
	p.aliases[g.subject] = last.alias
	p.lastFeedback = &Feedback{ClientID: client.ID, Subject: g.subject, Alias: last.alias, Time: last.time}
	p.mu.Unlock()
	setNote(w, "client=%s user=%s alias recorded", client.ID, g.subject)
	writeJSON(w, http.StatusOK, map[string]any{})
}

// feedbackAuthorization splits the single Authorization header
// "BindIdBackend AccessToken <token>; <value>" (scheme and wording exactly as the seed
// writes them). The value is base64, which has no "; ", so the last "; " separates.
func feedbackAuthorization(r *http.Request) (token, mac string, ok bool) {
	hs := r.Header.Values("Authorization")
	if len(hs) != 1 {
		return "", "", false
	}
	rest, ok := strings.CutPrefix(hs[0], feedbackAuthPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "; ")
	if i <= 0 {
		return "", "", false
	}
	token, mac = rest[:i], rest[i+2:]
	if strings.ContainsAny(token, " \t") || mac == "" {
		return "", "", false
	}
	return token, mac, true
}

type feedbackItem struct {
	alias string
	time  time.Time
}

// parseFeedbackBody checks the seed's body shape and returns subject_session_at and the
// reports.
func parseFeedbackBody(body []byte) (string, []feedbackItem, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return "", nil, errors.New("the body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("trailing data after the JSON object")
	}
	at, ok := m["subject_session_at"].(string)
	if !ok || at == "" {
		return "", nil, errors.New("subject_session_at must be a non-empty string")
	}
	list, ok := m["reports"].([]any)
	if !ok || len(list) == 0 {
		return "", nil, errors.New("reports must be a non-empty array")
	}
	if len(list) > maxFeedbackReports {
		return "", nil, fmt.Errorf("at most %d reports per request", maxFeedbackReports)
	}
	items := make([]feedbackItem, 0, len(list))
	for i, v := range list {
		rep, ok := v.(map[string]any)
		if !ok {
			return "", nil, fmt.Errorf("reports[%d] is not an object", i)
		}
		if typ, _ := rep["type"].(string); typ != FeedbackReportAuthenticationPerformed {
			return "", nil, fmt.Errorf("reports[%d].type must be %s", i, FeedbackReportAuthenticationPerformed)
		}
		alias, ok := rep["alias"].(string)
		if !ok || alias == "" || len(alias) > maxFeedbackAliasBytes || !utf8.ValidString(alias) ||
			strings.ContainsFunc(alias, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", nil, fmt.Errorf("reports[%d].alias must be a non-empty string of printable characters", i)
		}
		n, ok := rep["time"].(json.Number)
		if !ok {
			return "", nil, fmt.Errorf("reports[%d].time must be a number (seconds since the epoch)", i)
		}
		f, err := n.Float64()
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
			return "", nil, fmt.Errorf("reports[%d].time is out of range", i)
		}
		sec, frac := math.Modf(f)
		items = append(items, feedbackItem{alias: alias, time: time.Unix(int64(sec), int64(frac*1e9))})
	}
	return at, items, nil
}

func feedbackError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", FeedbackAuthScheme+` realm="oidctest"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
