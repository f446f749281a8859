package oidcflow

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Session feedback (BindID "Send Session Feedback", seed 001): after the application has
// established a new user's identity itself, the gateway tells the OP which alias the user
// has, so that later logins of that user carry it (bindid_alias).

// FeedbackReportAuthenticationPerformed is the report type that assigns an alias.
const FeedbackReportAuthenticationPerformed = "authentication_performed"

// FeedbackAuthScheme is the scheme of the feedback request's Authorization header.
const FeedbackAuthScheme = "BindIdBackend"

// MaxFeedbackAliasBytes is the longest alias SessionFeedback sends.
const MaxFeedbackAliasBytes = 255

// feedbackBody is the JSON body of a session feedback request, fields in the seed's order.
type feedbackBody struct {
	SubjectSessionAt string           `json:"subject_session_at"`
	Reports          []feedbackReport `json:"reports"`
}

type feedbackReport struct {
	Type  string `json:"type"`
	Alias string `json:"alias"`
	Time  int64  `json:"time"`
}

// SessionFeedback reports to the OP that the application authenticated the user of
// accessToken itself and assigns them alias (BindID session feedback, seed 001):
//
//	POST <endpoint>
//	Content-Type: application/json
//	Authorization: BindIdBackend AccessToken <accessToken>; <feedback auth value>
//
//	{"subject_session_at":"<accessToken>","reports":[{"type":"authentication_performed","alias":"<alias>","time":<at, unix seconds>}]}
//
// The feedback auth value is the standard, padded base64 of HMAC-SHA256 keyed with the
// client secret's bytes over the access token's bytes (both UTF-8, as the seed's Java
// sample computes it). at is the time of the application's authentication; the zero time
// means now. endpoint "" means the discovery document's session_feedback_endpoint
// (Metadata.SessionFeedbackEndpoint). The request goes through the Client's HTTP client
// (timeouts, body cap, no redirects); any 2xx answer is success, whatever its body.
//
// Errors (*Error; neither the access token, the client secret nor the feedback auth value
// ever appears in them):
//   - CodeFeedbackUnavailable: the Client has no client secret, which the HMAC needs, or
//     endpoint is "" and the OP advertises none. Nothing was sent.
//   - CodeFeedbackInvalid: the access token is empty or not visible ASCII, the alias is
//     empty, longer than MaxFeedbackAliasBytes, not UTF-8 or has control characters, or the
//     endpoint is not an absolute https URL (http only on a loopback host). Nothing was sent.
//   - CodeFeedbackFailed, temporary: network errors, timeouts, HTTP 408, 429 and 5xx.
//   - CodeFeedbackRejected, permanent: any other answer (4xx, a redirect, 1xx), with the
//     OP's OAuth-style error and error_description when it answered JSON. A 401 with
//     OPError "invalid_token" usually means the access token expired.
func (c *Client) SessionFeedback(ctx context.Context, endpoint, accessToken, alias string, at time.Time) error {
	if c.cfg.ClientSecret == "" {
		return newErr(CodeFeedbackUnavailable, false, "session feedback needs the client secret (its Authorization header is an HMAC keyed with it), and none is configured")
	}
	if !validFeedbackToken(accessToken) {
		return newErr(CodeFeedbackInvalid, false, "session feedback needs the session's access token (1 or more visible ASCII characters)")
	}
	if err := checkFeedbackAlias(alias); err != nil {
		return newErr(CodeFeedbackInvalid, false, "session feedback alias %w", err)
	}
	if endpoint == "" {
		p, err := c.discover(ctx)
		if err != nil {
			return err
		}
		if endpoint = p.meta.SessionFeedbackEndpoint; endpoint == "" {
			return newErr(CodeFeedbackUnavailable, false, "no session feedback endpoint is configured and the OP advertises no session_feedback_endpoint")
		}
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.Fragment != "" {
		return newErr(CodeFeedbackInvalid, false, "session feedback endpoint is not an absolute URL")
	}
	if err := checkEndpointURL("session feedback endpoint", u, u); err != nil {
		return newErr(CodeFeedbackInvalid, false, "%w", err)
	}
	if at.IsZero() {
		at = c.cfg.Now()
	}
	body, err := json.Marshal(feedbackBody{
		SubjectSessionAt: accessToken,
		Reports:          []feedbackReport{{Type: FeedbackReportAuthenticationPerformed, Alias: alias, Time: at.Unix()}},
	})
	if err != nil { // cannot happen: strings and an int
		return newErr(CodeFeedbackInvalid, false, "encoding the session feedback: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return newErr(CodeFeedbackInvalid, false, "building the session feedback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	mac := feedbackAuthValue(c.cfg.ClientSecret, accessToken)
	req.Header.Set("Authorization", FeedbackAuthScheme+" AccessToken "+accessToken+"; "+mac)

	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		// *url.Error names the method and the endpoint only; the token travels in the
		// header and the body, which no transport error quotes.
		return newErr(CodeFeedbackFailed, true, "calling the session feedback endpoint: %w", err)
	}
	defer resp.Body.Close()
	// The body is read (capped by the client) only to explain a refusal, and drained so the
	// connection can be reused.
	raw, _ := io.ReadAll(resp.Body)
	status := resp.StatusCode
	if status >= 200 && status < 300 {
		return nil
	}
	opErr, desc := oauthErrorBodyScrubbed(resp.Header, raw, []string{accessToken, c.cfg.ClientSecret, mac})
	temporary := status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
	var e *Error
	switch {
	case temporary:
		e = newErr(CodeFeedbackFailed, true, "session feedback endpoint answered HTTP %d%s", status, describe(desc))
	case status >= 300 && status < 400:
		e = newErr(CodeFeedbackRejected, false, "session feedback endpoint answered HTTP %d (redirects are not followed; check the endpoint URL)", status)
	default:
		e = newErr(CodeFeedbackRejected, false, "session feedback endpoint refused the report (HTTP %d)%s", status, describe(desc))
	}
	e.OPError = opErr
	return e
}

// feedbackAuthValue is the seed's FEEDBACK_AUTH_VALUE: base64 (standard alphabet, padded)
// of HMAC-SHA256 keyed with the client secret over the access token, both as UTF-8 bytes
// (a Go string holds them as they are).
func feedbackAuthValue(clientSecret, accessToken string) string {
	m := hmac.New(sha256.New, []byte(clientSecret))
	m.Write([]byte(accessToken))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// validFeedbackToken accepts the access token syntax of RFC 6749 A.12 without the space
// (1*VSCHAR minus SP): anything else could not travel in the Authorization header as is.
func validFeedbackToken(s string) bool {
	if s == "" || len(s) > MaxTokenBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func checkFeedbackAlias(alias string) error {
	switch {
	case alias == "":
		return errors.New("is empty")
	case len(alias) > MaxFeedbackAliasBytes:
		return errors.New("is longer than 255 bytes")
	case !utf8.ValidString(alias):
		return errors.New("is not valid UTF-8")
	case strings.ContainsFunc(alias, isControl):
		return errors.New("contains control characters")
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

// oauthErrorBodyScrubbed reads an OAuth-style {"error","error_description"} answer, when
// the body is JSON. It blanks out each non-empty one of secrets in both values before they
// are clipped and stripped of control characters, so that no part of a secret the OP
// echoes survives.
func oauthErrorBodyScrubbed(h http.Header, body []byte, secrets []string) (code, desc string) {
	ct := contentType(h)
	if ct != "application/json" && !strings.HasSuffix(ct, "+json") {
		return "", ""
	}
	return oauthErrorValues(body, secrets)
}

// oauthErrorValues reads {"error","error_description"} from a JSON body whatever its
// content type, scrubbed of secrets, clipped and stripped of control characters.
func oauthErrorValues(body []byte, secrets []string) (code, desc string) {
	var e struct {
		Error            any `json:"error"`
		ErrorDescription any `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	s1, _ := e.Error.(string)
	s2, _ := e.ErrorDescription.(string)
	for _, secret := range secrets {
		if secret != "" {
			s1 = strings.ReplaceAll(s1, secret, "[redacted]")
			s2 = strings.ReplaceAll(s2, secret, "[redacted]")
		}
	}
	return clean(s1, 64), clean(s2, 200)
}

// clean removes control characters and clips s to n bytes (on a rune boundary).
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if isControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func describe(desc string) string {
	if desc == "" {
		return ""
	}
	return ": " + desc
}
