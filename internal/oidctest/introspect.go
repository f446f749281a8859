package oidctest

import (
	"maps"
	"net/http"
	"net/url"
)

// PathIntrospect is the RFC 7662 token introspection endpoint, advertised as
// introspection_endpoint.
const PathIntrospect = "/introspect"

// SetIntrospection makes the introspection endpoint answer answer (200, as JSON) when an
// authenticated client asks about token; nil forgets the token. Every other token is
// {"active": false}. The answer is sent as given, valid or not, so tests can build every
// kind of bad answer.
func (p *Provider) SetIntrospection(token string, answer map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.introspect == nil {
		p.introspect = map[string]map[string]any{}
	}
	if answer == nil {
		delete(p.introspect, token)
		return
	}
	p.introspect[token] = maps.Clone(answer)
}

// SetIntrospectionStatus, when non-zero, makes the introspection endpoint answer this status
// with an OAuth error body, whatever the request (e.g. 503 for an outage, 401 for a
// client the OP does not let introspect).
func (p *Provider) SetIntrospectionStatus(status int) {
	p.mu.Lock()
	p.introspectStatus = status
	p.mu.Unlock()
}

// LastIntrospection returns the form of the last introspection request (with "auth": basic,
// post or none), or nil.
func (p *Provider) LastIntrospection() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneValues(p.lastIntrospect)
}

func (p *Provider) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	p.bump(func(c *Counts) *int { return &c.Introspect })
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	form, auth, clientID, secret, authErr, ok := p.readClientForm(w, r, &p.lastIntrospect)
	if !ok {
		return
	}
	p.mu.Lock()
	status, answer := p.introspectStatus, maps.Clone(p.introspect[form.Get("token")])
	p.mu.Unlock()
	if status != 0 {
		tokenError(w, status, "temporarily_unavailable", "fault injected by oidctest")
		return
	}
	if authErr != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", authErr.Error())
		return
	}
	_, known := p.authenticate(auth, clientID, secret)
	if !known {
		tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if form.Get("token") == "" {
		tokenError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	if answer == nil {
		answer = map[string]any{"active": false}
	}
	writeJSON(w, http.StatusOK, answer)
}
