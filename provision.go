package trustgate

// What Provision derives from the configuration: the provider profile's defaults, the
// rendering options and route policy, and the provider client's configuration.

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/trustgate/trustgate/oidcflow"
	"github.com/trustgate/trustgate/provider"
	"github.com/trustgate/trustgate/trust"
)

// applyProvider looks up the provider profile and fills in every key the configuration
// leaves empty with the profile's value. It runs when the Caddyfile is adapted (so the JSON
// shows the resolved values) and again at Provision (for JSON configurations); explicit
// keys always win.
func (h *Handler) applyProvider() (*provider.Profile, error) {
	p, err := provider.Lookup(h.Provider)
	if err != nil {
		return nil, err
	}
	if h.AliasClaim == "" {
		h.AliasClaim = p.AliasClaim
	}
	if h.Userinfo == "" && p.Userinfo != "" {
		h.Userinfo = p.Userinfo
	}
	if p.UserinfoRequireSigned && h.Userinfo != oidcflow.UserinfoOff {
		// A provider that always signs userinfo (BankID) gets no unsigned answer through,
		// whatever method is chosen: a JSON answer there can only be a substitution.
		h.UserinfoRequireSigned = true
	}
	if h.UserinfoIssuer == "" {
		h.UserinfoIssuer = p.UserinfoIssuer(h.Issuer)
	}
	if h.LoginHintFormat == "" && p.LoginHintFormat != "" && p.LoginHintFormat != provider.HintJWT {
		h.LoginHintFormat = p.LoginHintFormat
	}
	return p, nil
}

// provisionTrust compiles the header options and the route policy.
func (h *Handler) provisionTrust() error {
	std, err := trust.ParseStandardHeaders(h.StandardHeaders)
	if err != nil {
		return fmt.Errorf("standard_headers: %w", err)
	}
	mappings, err := trust.CompileMappings(h.HeaderMappings)
	if err != nil {
		return err
	}
	if h.MaxHeaderBytes < 0 || h.MaxTotalHeaderBytes < 0 {
		return errors.New("max_header_bytes and max_total_header_bytes must not be negative")
	}
	h.sessions.trustOpts = trust.Options{
		AliasClaim:          h.AliasClaim,
		Verification:        h.profile.Verification,
		Standard:            std,
		Mappings:            mappings,
		MaxHeaderBytes:      h.MaxHeaderBytes,
		MaxTotalHeaderBytes: h.MaxTotalHeaderBytes,
		UserClaim:           h.UserClaim,
		GroupsClaim:         h.GroupsClaim,
	}
	warnUnverifiedEmail(h.logger, h.AllowUnverifiedEmail)
	if h.Require != nil {
		if h.policy, err = h.Require.compile(h.ACRLevels, h.AllowUnverifiedEmail); err != nil {
			return err
		}
	}
	return nil
}

// oidcConfig is the provider client's configuration from the handler's.
func oidcConfig(h *Handler) oidcflow.Config {
	cfg := oidcflow.Config{
		Issuer:                h.Issuer,
		ClientID:              h.ClientID,
		ClientSecret:          h.clientSecret,
		Scopes:                h.Scopes,
		AuthMethod:            h.TokenAuthMethod,
		ClientKeys:            h.material.keys,
		ClientCertificate:     h.material.cert,
		DPoPKey:               h.material.dpop,
		Profile:               h.Profile,
		PAR:                   h.PAR,
		RequestObject:         h.RequestObject,
		Userinfo:              h.Userinfo,
		RequireSignedUserinfo: h.UserinfoRequireSigned,
		UserinfoIssuer:        h.UserinfoIssuer,
		TrustedAudiences:      h.TrustedAudiences,
		ClockLeeway:           time.Duration(h.ClockLeeway),
		Now:                   h.now,
	}
	if h.profile != nil { // nil only when Validate runs without Provision (tests)
		cfg.IDTokenFirstClaims = h.profile.IDTokenFirstClaims()
	}
	if len(h.AuthParams) > 0 {
		repl := caddy.NewReplacer()
		cfg.AuthParams = make(map[string]string, len(h.AuthParams))
		for k, v := range h.AuthParams {
			cfg.AuthParams[k] = repl.ReplaceAll(v, "")
		}
	}
	return cfg
}
