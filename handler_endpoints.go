package trustgate

import (
	"net/http"

	"github.com/trustgate/trustgate/internal/web"
)

// serveEndpoint serves the gateway's own endpoints. They never reach the upstream.
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, name string) error {
	switch name {
	case "callback":
		return h.login.callback(w, r)
	case "login":
		return h.login.serveLogin(w, r)
	case "logout":
		return h.logout.serveLogout(w, r)
	case "me":
		return h.sessions.serveMe(w, r)
	case "jwks.json":
		return h.assertion.serveJWKS(w, r)
	case "client-jwks.json":
		return h.serveClientJWKS(w, r)
	case "backchannel-logout":
		return h.logout.serveBackchannel(w, r)
	case "signed-out":
		return h.logout.serveSignedOut(w, r)
	case "ciba/start":
		return h.ciba.start(w, r)
	case "ciba/poll":
		return h.ciba.poll(w, r)
	case "ciba/user-code":
		return h.ciba.userCode(w, r)
	case "healthz":
		return h.health.serve(w, r)
	default:
		return h.refuser.Refuse(w, r, &web.Refusal{Status: http.StatusNotFound, Reason: "not_found", Message: "no such gateway endpoint",
			Title: "Not found", PageMessage: "There is no such gateway endpoint."})
	}
}
