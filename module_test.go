package trustgate

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/trustgate/trustgate/trust"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Handler
		wantErr string // substring; "" means success
	}{
		{
			name:  "issuer as argument",
			input: `trustgate https://idp.example.com`,
			want:  Handler{Issuer: "https://idp.example.com"},
		},
		{
			name: "every subdirective",
			input: `trustgate {
				issuer https://idp.example.com
				client_id app
				client_secret {env.OIDC_SECRET}
				secret {env.NEW_KEY}
				secret {file./run/old} {env.OLDER}
				scopes openid email
				path_prefix /_auth
				redirect_url https://app.example.com/_auth/callback
				token_auth_method client_secret_post
				userinfo post require_signed
				session_store memory {
					max_sessions 500
				}
				idle_timeout 30m
				lifetime 8h
				cookie_name app_session
				alias_claim preferred_username
				clock_leeway 30s
				trusted_audiences api1 api2
				insecure_cookie
			}`,
			want: Handler{
				Issuer:                "https://idp.example.com",
				ClientID:              "app",
				ClientSecret:          "{env.OIDC_SECRET}",
				Secrets:               []string{"{env.NEW_KEY}", "{file./run/old}", "{env.OLDER}"},
				Scopes:                []string{"openid", "email"},
				PathPrefix:            "/_auth",
				RedirectURL:           "https://app.example.com/_auth/callback",
				TokenAuthMethod:       "client_secret_post",
				Userinfo:              "post",
				UserinfoRequireSigned: true,
				SessionStore:          &SessionStoreConfig{Memory: &MemoryStoreConfig{MaxSessions: 500}},
				IdleTimeout:           caddy.Duration(30 * time.Minute),
				Lifetime:              caddy.Duration(8 * time.Hour),
				CookieName:            "app_session",
				AliasClaim:            "preferred_username",
				ClockLeeway:           caddy.Duration(30 * time.Second),
				TrustedAudiences:      []string{"api1", "api2"},
				InsecureCookie:        true,
			},
		},
		{name: "userinfo off", input: "trustgate {\n userinfo off\n}", want: Handler{Userinfo: "off"}},
		{name: "auth_params", input: "trustgate {\n auth_params {\n  hd example.com\n  audience {env.API_AUD}\n }\n}", want: Handler{AuthParams: map[string]string{"hd": "example.com", "audience": "{env.API_AUD}"}}},
		{name: "auth_params without value", input: "trustgate {\n auth_params {\n  hd\n }\n}", wantErr: "auth_params hd needs one value"},
		{name: "auth_params twice the same", input: "trustgate {\n auth_params {\n  hd a\n  hd b\n }\n}", wantErr: "auth_params hd already specified"},
		{name: "auth_params empty", input: "trustgate {\n auth_params\n}", wantErr: "auth_params needs a block"},
		{name: "memory store without block", input: "trustgate {\n session_store memory\n}", want: Handler{SessionStore: &SessionStoreConfig{Memory: &MemoryStoreConfig{}}}},
		{name: "two issuer arguments", input: "trustgate a b", wantErr: "wrong argument count"},
		{name: "issuer twice", input: "trustgate https://a {\n issuer https://b\n}", wantErr: "issuer already specified"},
		{name: "unknown subdirective", input: "trustgate {\n bogus 1\n}", wantErr: "unrecognized subdirective 'bogus'"},
		{name: "repeated client_id", input: "trustgate {\n client_id a\n client_id b\n}", wantErr: "client_id already specified"},
		{name: "client_id without value", input: "trustgate {\n client_id\n}", wantErr: "wrong argument count"},
		{name: "client_secret two values", input: "trustgate {\n client_secret a b\n}", wantErr: "wrong argument count"},
		{name: "secret without value", input: "trustgate {\n secret\n}", wantErr: "wrong argument count"},
		{name: "scopes empty", input: "trustgate {\n scopes\n}", wantErr: "wrong argument count"},
		{name: "bad duration", input: "trustgate {\n idle_timeout soon\n}", wantErr: "invalid idle_timeout duration 'soon'"},
		{name: "bad lifetime", input: "trustgate {\n lifetime 5x\n}", wantErr: "invalid lifetime duration"},
		{name: "userinfo off require_signed", input: "trustgate {\n userinfo off require_signed\n}", wantErr: "only get|post take require_signed"},
		{name: "userinfo junk", input: "trustgate {\n userinfo get signed\n}", wantErr: "unexpected 'signed'"},
		{name: "unknown store", input: "trustgate {\n session_store etcd\n}", wantErr: "unknown session_store 'etcd'"},
		{name: "bad max_sessions", input: "trustgate {\n session_store memory {\n max_sessions -3\n }\n}", wantErr: "invalid max_sessions '-3'"},
		{name: "unknown memory option", input: "trustgate {\n session_store memory {\n size 3\n }\n}", wantErr: "unrecognized session_store memory option 'size'"},
		{name: "insecure_cookie with argument", input: "trustgate {\n insecure_cookie yes\n}", wantErr: "wrong argument count"},
		{
			name: "redis store, every option",
			input: `trustgate {
				session_store redis {
					addrs 10.0.0.1:26379 10.0.0.2:26379
					master_name mymaster
					username gw
					password {env.REDIS_PASSWORD}
					db 2
					tls {
						ca_file /etc/ssl/redis-ca.pem
						server_name redis.internal
						client_cert /etc/gw.pem /etc/gw.key
					}
					key_prefix app1:
					dial_timeout 3s
					read_timeout 500ms
					local_cache_ttl 30s
					local_cache_size 500
				}
			}`,
			want: Handler{SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{
				Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"}, MasterName: "mymaster", Username: "gw",
				Password: "{env.REDIS_PASSWORD}", DB: 2, KeyPrefix: "app1:",
				TLS:         &RedisTLSConfig{CAFile: "/etc/ssl/redis-ca.pem", ServerName: "redis.internal", ClientCertFile: "/etc/gw.pem", ClientKeyFile: "/etc/gw.key"},
				DialTimeout: caddy.Duration(3 * time.Second), ReadTimeout: caddy.Duration(500 * time.Millisecond),
				LocalCacheTTL: caddy.Duration(30 * time.Second), LocalCacheSize: 500,
			}}},
		},
		{name: "redis bare tls and cache off", input: "trustgate {\n session_store redis {\n addrs 127.0.0.1:6379\n tls\n local_cache_ttl off\n }\n}",
			want: Handler{SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:6379"}, TLS: &RedisTLSConfig{}, LocalCacheTTL: -1}}}},
		{name: "redis sentinel auth", input: "trustgate {\n session_store redis {\n addrs 10.0.0.1:26379\n master_name m\n sentinel_username sentinel-user\n sentinel_password {env.REDIS_SENTINEL_PASSWORD}\n }\n}",
			want: Handler{SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"10.0.0.1:26379"}, MasterName: "m", SentinelUsername: "sentinel-user", SentinelPassword: "{env.REDIS_SENTINEL_PASSWORD}"}}}},
		{name: "redis sentinel_password twice", input: "trustgate {\n session_store redis {\n sentinel_password a\n sentinel_password b\n }\n}", wantErr: "sentinel_password already specified"},
		{name: "redis without addrs", input: "trustgate {\n session_store redis {\n addrs\n }\n}", wantErr: "wrong argument count"},
		{name: "redis unknown option", input: "trustgate {\n session_store redis {\n cluster yes\n }\n}", wantErr: "unrecognized session_store redis option 'cluster'"},
		{name: "redis bad timeout", input: "trustgate {\n session_store redis {\n read_timeout 0s\n }\n}", wantErr: "invalid read_timeout duration '0s'"},
		{name: "redis bad db", input: "trustgate {\n session_store redis {\n db -1\n }\n}", wantErr: "invalid db '-1'"},
		{name: "redis repeated option", input: "trustgate {\n session_store redis {\n db 1\n db 2\n }\n}", wantErr: "db already specified"},
		{
			name: "trust headers, policy and assertion",
			input: `trustgate {
				standard_headers identity
				header X-Employee-Id employee_id
				header X-City address.locality
				max_header_bytes 2048
				max_total_header_bytes 8192
				acr_levels low high top
				require acr_at_least high
				require amr mfa
				require amr hwk
				require claim groups admins ops
				require claim tenant t1
				require email_domain example.com *.example.org
				require max_auth_age 15m
				require known_user
				assertion {
					issuer https://app.example.com
					audience legacy
					lifetime 30s
					key_rotation 168h
				}
			}`,
			want: Handler{
				StandardHeaders:     "identity",
				HeaderMappings:      []trust.Mapping{{Header: "X-Employee-Id", Claim: "employee_id"}, {Header: "X-City", Claim: "address.locality"}},
				MaxHeaderBytes:      2048,
				MaxTotalHeaderBytes: 8192,
				ACRLevels:           []string{"low", "high", "top"},
				Require: &PolicyConfig{
					ACRAtLeast:   "high",
					AMR:          []string{"mfa", "hwk"},
					Claims:       []ClaimRequirement{{Claim: "groups", Values: []string{"admins", "ops"}}, {Claim: "tenant", Values: []string{"t1"}}},
					EmailDomains: []string{"example.com", "*.example.org"},
					MaxAuthAge:   caddy.Duration(15 * time.Minute),
					KnownUser:    true,
				},
				Assertion: &AssertionConfig{Issuer: "https://app.example.com", Audience: "legacy", Lifetime: caddy.Duration(30 * time.Second), KeyRotation: caddy.Duration(168 * time.Hour)},
			},
		},
		{name: "policy block", input: "trustgate {\n require acr a b\n}", want: Handler{Require: &PolicyConfig{ACR: []string{"a", "b"}}}},
		{name: "bare assertion", input: "trustgate {\n assertion\n}", want: Handler{Assertion: &AssertionConfig{}}},
		{name: "header without claim", input: "trustgate {\n header X-A\n}", wantErr: "header needs a header name and a claim path"},
		{name: "bad max_header_bytes", input: "trustgate {\n max_header_bytes 0\n}", wantErr: "max_header_bytes must be a positive number"},
		{name: "acr_levels empty", input: "trustgate {\n acr_levels\n}", wantErr: "acr_levels needs"},
		{name: "require nothing", input: "trustgate {\n require\n}", wantErr: "require needs a rule"},
		{name: "require unknown rule", input: "trustgate {\n require groups admins\n}", wantErr: "unknown require rule 'groups'"},
		{name: "user_claim, groups_claim, allow_unverified_email", input: "trustgate {\n user_claim preferred_username\n groups_claim realm_access.roles\n allow_unverified_email\n}",
			want: Handler{UserClaim: "preferred_username", GroupsClaim: "realm_access.roles", AllowUnverifiedEmail: true}},
		{name: "user_claim without value", input: "trustgate {\n user_claim\n}", wantErr: "user_claim needs one claim path"},
		{name: "user_claim two values", input: "trustgate {\n user_claim a b\n}", wantErr: "user_claim needs one claim path"},
		{name: "groups_claim without value", input: "trustgate {\n groups_claim\n}", wantErr: "groups_claim needs one claim path"},
		{name: "groups_claim twice", input: "trustgate {\n groups_claim a\n groups_claim b\n}", wantErr: "groups_claim already specified"},
		{name: "allow_unverified_email with value", input: "trustgate {\n allow_unverified_email yes\n}", wantErr: "wrong argument count"},
		{name: "require group", input: "trustgate {\n require group admins ops\n require group Task.Write\n}",
			want: Handler{Require: &PolicyConfig{Groups: []string{"admins", "ops", "Task.Write"}}}},
		{name: "require group without value", input: "trustgate {\n require group\n}", wantErr: "require group needs at least one value"},
		{name: "require claim dotted path, any of the values", input: "trustgate {\n require claim realm_access.roles admin ops\n}",
			want: Handler{Require: &PolicyConfig{Claims: []ClaimRequirement{{Claim: "realm_access.roles", Values: []string{"admin", "ops"}}}}}},
		{name: "require acr without value", input: "trustgate {\n require acr\n}", wantErr: "require acr needs at least one value"},
		{name: "require acr twice", input: "trustgate {\n require acr a\n require acr b\n}", wantErr: "require acr already specified"},
		{name: "require acr_at_least two", input: "trustgate {\n require acr_at_least a b\n}", wantErr: "takes one level"},
		{name: "require claim without value", input: "trustgate {\n require claim groups\n}", wantErr: "require claim needs a claim path and at least one value"},
		{name: "require max_auth_age bad", input: "trustgate {\n require max_auth_age soon\n}", wantErr: "invalid max_auth_age duration 'soon'"},
		{name: "require known_user with value", input: "trustgate {\n require known_user yes\n}", wantErr: "takes no value"},
		{name: "assertion unknown option", input: "trustgate {\n assertion {\n alg HS256\n }\n}", wantErr: "unrecognized assertion option 'alg'"},
		{name: "assertion bad lifetime", input: "trustgate {\n assertion {\n lifetime 0s\n }\n}", wantErr: "invalid lifetime duration"},
		{name: "redis tls unknown option", input: "trustgate {\n session_store redis {\n tls {\n verify no\n }\n }\n}", wantErr: "unrecognized session_store redis tls option 'verify'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Handler
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalCaddyfile() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("UnmarshalCaddyfile() = %+v,\nwant %+v", got, tt.want)
			}
		})
	}
}

// provision runs Provision on h as Caddy would, with a private data directory.
func provision(t testing.TB, h *Handler) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(func() {
		_ = h.Cleanup()
		cancel()
	})
	return h.Provision(ctx)
}

const testSecret = "test-secret-0123456789-0123456789-abcdef"

func TestProvisionErrors(t *testing.T) {
	t.Setenv("TG_TEST_EMPTY", "")
	t.Setenv("TG_TEST_CLIENT_SECRET", "s3cr3t-value-never-shown")
	tests := []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{"no issuer", Handler{ClientID: "c", Secrets: []string{testSecret}}, "issuer is required"},
		{"no client id", Handler{Issuer: "https://idp.example.com", Secrets: []string{testSecret}}, "client_id is required"},
		{"relative issuer", Handler{Issuer: "idp.example.com", ClientID: "c", Secrets: []string{testSecret}}, "not an absolute URL"},
		{"http issuer off loopback", Handler{Issuer: "http://idp.example.com", ClientID: "c", Secrets: []string{testSecret}}, "only https is accepted"},
		{"secret placeholder empty", Handler{Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "{env.TG_TEST_EMPTY}", Secrets: []string{testSecret}}, "client_secret is empty after expanding placeholders"},
		{"short cookie secret", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret, "{env.TG_TEST_CLIENT_SECRET}"}}, "secret #2 is 24 bytes"},
		{"bad path prefix", Handler{Issuer: "https://idp.example.com", ClientID: "c", PathPrefix: "auth", Secrets: []string{testSecret}}, "path_prefix"},
		{"root path prefix", Handler{Issuer: "https://idp.example.com", ClientID: "c", PathPrefix: "/", Secrets: []string{testSecret}}, "path_prefix"},
		{"redirect_url wrong path", Handler{Issuer: "https://idp.example.com", ClientID: "c", RedirectURL: "https://app/cb", Secrets: []string{testSecret}}, "but the callback is served at \"/.trustgate/callback\""},
		{"redirect_url http with secure cookies", Handler{Issuer: "https://idp.example.com", ClientID: "c", RedirectURL: "http://app/.trustgate/callback", Secrets: []string{testSecret}}, "redirect_url uses http"},
		{"idle longer than lifetime", Handler{Issuer: "https://idp.example.com", ClientID: "c", IdleTimeout: caddy.Duration(3 * time.Hour), Lifetime: caddy.Duration(time.Hour), Secrets: []string{testSecret}}, "idle_timeout 3h0m0s is longer than lifetime 1h0m0s"},
		{"huge leeway", Handler{Issuer: "https://idp.example.com", ClientID: "c", ClockLeeway: caddy.Duration(time.Hour), Secrets: []string{testSecret}}, "clock_leeway"},
		{"bad cookie name", Handler{Issuer: "https://idp.example.com", ClientID: "c", CookieName: "a;b", Secrets: []string{testSecret}}, "cookie_name"},
		{"post auth without secret", Handler{Issuer: "https://idp.example.com", ClientID: "c", TokenAuthMethod: "client_secret_post", Secrets: []string{testSecret}}, "needs a client secret"},
		{"tls_trusted_ca_certs missing file", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, TLSTrustedCACerts: "/nonexistent/trustgate-ca.pem"}, "tls_trusted_ca_certs: open /nonexistent/trustgate-ca.pem"},
		{"tls_trusted_ca_certs placeholder empty", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, TLSTrustedCACerts: "{env.TG_TEST_EMPTY}"}, "tls_trusted_ca_certs is empty after expanding placeholders"},
		{"bearer without audience", Handler{Issuer: "https://idp.example.com", ClientID: "c", Bearer: &BearerConfig{}, Secrets: []string{testSecret}}, "bearer: at least one audience is required"},
		{"bearer empty audience", Handler{Issuer: "https://idp.example.com", ClientID: "c", Bearer: &BearerConfig{Audiences: []string{" api"}}, Secrets: []string{testSecret}}, "bearer: an audience is empty"},
		{"require scope with a space", Handler{Issuer: "https://idp.example.com", ClientID: "c", Require: &PolicyConfig{Scopes: []string{"a b"}}, Secrets: []string{testSecret}}, "scope \"a b\" contains a space"},
		{"redis without addrs", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{}}}, "session_store redis: addrs is required"},
		{"redis bad address", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"localhost"}}}}, `address "localhost" is not host:port`},
		{"redis cluster with db", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"a:1", "b:1"}, DB: 3}}}, "db must be 0 with Redis Cluster"},
		{"memory and redis", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Memory: &MemoryStoreConfig{}, Redis: &RedisStoreConfig{Addrs: []string{"a:1"}}}}, "choose memory or redis"},
		{"redis tls ca_file missing", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, TLS: &RedisTLSConfig{CAFile: "/nonexistent/ca.pem"}}}}, "session_store redis tls: reading ca_file"},
		{"redis tls ca_file without certificates", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, TLS: &RedisTLSConfig{CAFile: "testdata/caddyfile_adapt/minimal.caddyfiletest"}}}}, "holds no PEM certificate"},
		{"redis tls client cert without key", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, TLS: &RedisTLSConfig{ClientCertFile: "/etc/gw.pem"}}}}, "needs both a certificate and a key file"},
		{"unknown provider", Handler{Provider: "okta", Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}}, `unknown provider "okta"`},
		{"userinfo_issuer not a URL", Handler{Provider: "bankid", Issuer: "https://idp.example.com", ClientID: "c", UserinfoIssuer: "userinfo.example.com", Secrets: []string{testSecret}}, "userinfo issuer"},
		{"unknown login_hint_format", Handler{Issuer: "https://idp.example.com", ClientID: "c", LoginHintFormat: "pem", Secrets: []string{testSecret}}, "login_hint_format must be jwt or iddataweb"},
		{"iddataweb binding without secret", Handler{Provider: "iddataweb", Issuer: "https://idp.example.com", ClientID: "c", IdentityBinding: &IdentityBindingConfig{}, Secrets: []string{testSecret}}, "login_hint_format iddataweb needs client_secret"},
		{"encryption key without iddataweb hints", Handler{Issuer: "https://idp.example.com", ClientID: "c", LoginHintEncryptionKey: "https://idw.example/jwks", Secrets: []string{testSecret}}, "login_hint_encryption_key is only used with login_hint_format iddataweb"},
		{"feedback without an alias claim", Handler{Issuer: "https://idp.example.com", ClientID: "c", ClientSecret: "s", FeedbackEndpoint: "https://idp.example.com/session-feedback", Secrets: []string{testSecret}}, "feedback_endpoint needs an alias claim"},
		{"negative ciba max_expiry", Handler{Issuer: "https://idp.example.com", ClientID: "c", CIBA: &CIBAConfig{MaxExpiry: -1}, Secrets: []string{testSecret}}, "ciba: max_expiry"},
		{"auth_params reserved state", Handler{Issuer: "https://idp.example.com", ClientID: "c", AuthParams: map[string]string{"hd": "example.com", "state": "x"}, Secrets: []string{testSecret}}, `auth_params: "state" is set by the gateway`},
		{"auth_params reserved redirect_uri", Handler{Issuer: "https://idp.example.com", ClientID: "c", AuthParams: map[string]string{"redirect_uri": "https://evil.example/cb"}, Secrets: []string{testSecret}}, `auth_params: "redirect_uri" is set by the gateway`},
		{"redis sentinel_password placeholder empty", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, MasterName: "m", SentinelPassword: "{env.TG_TEST_EMPTY}"}}}, "redis sentinel_password is empty after expanding"},
		{"redis sentinel_username placeholder empty", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, MasterName: "m", SentinelUsername: "{env.TG_TEST_EMPTY}", SentinelPassword: "{env.TG_TEST_CLIENT_SECRET}"}}}, "redis sentinel_username is empty after expanding"},
		{"redis sentinel_password without master_name", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, SentinelPassword: "{env.TG_TEST_CLIENT_SECRET}"}}}, "sentinel_username and sentinel_password need master_name"},
		{"redis password placeholder empty", Handler{Issuer: "https://idp.example.com", ClientID: "c", Secrets: []string{testSecret}, SessionStore: &SessionStoreConfig{Redis: &RedisStoreConfig{Addrs: []string{"127.0.0.1:1"}, Password: "{env.TG_TEST_EMPTY}"}}}, "redis password is empty after expanding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			err := provision(t, &h)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Provision() error = %v, want containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cr3t-value-never-shown") {
				t.Fatalf("Provision() error %q echoes a secret", err)
			}
		})
	}
}

func TestProvisionDefaultsAndExpansion(t *testing.T) {
	t.Setenv("TG_TEST_ISSUER", "https://idp.example.com")
	t.Setenv("TG_TEST_SECRET", testSecret)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secretFile, []byte("from-a-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := Handler{
		Issuer:       "{env.TG_TEST_ISSUER}",
		ClientID:     "app",
		ClientSecret: "{file." + secretFile + "}",
		Secrets:      []string{"{env.TG_TEST_SECRET}"},
	}
	if err := provision(t, &h); err != nil {
		t.Fatalf("Provision() error = %v", err)
	}
	if h.Issuer != "https://idp.example.com" {
		t.Errorf("Issuer = %q, want expanded", h.Issuer)
	}
	if h.clientSecret != "from-a-file" {
		t.Errorf("client secret = %q, want the file's content", h.clientSecret)
	}
	if h.ClientSecret != "{file."+secretFile+"}" {
		t.Errorf("ClientSecret field = %q, want the placeholder kept (the expanded value must not be written back into the config)", h.ClientSecret)
	}
	if h.PathPrefix != "/.trustgate" || time.Duration(h.IdleTimeout) != time.Hour || time.Duration(h.Lifetime) != 12*time.Hour {
		t.Errorf("defaults = %q %v %v, want /.trustgate 1h 12h", h.PathPrefix, time.Duration(h.IdleTimeout), time.Duration(h.Lifetime))
	}
	if h.sessions.cookieName != "__Host-trustgate" {
		t.Errorf("cookie name = %q, want __Host-trustgate (secure by default)", h.sessions.cookieName)
	}
	if got := h.client.Config().AuthMethod; got != "client_secret_basic" {
		t.Errorf("token auth = %q, want client_secret_basic", got)
	}
}

func TestProvisionGeneratesAndKeepsSecret(t *testing.T) {
	// caddy.AppDataDir() follows XDG_DATA_HOME, which `make test` points at a private dir.
	path := filepath.Join(caddy.AppDataDir(), "trustgate", "cookie-secret")
	_ = os.Remove(path)
	t.Cleanup(func() { _ = os.Remove(path) })

	h1 := Handler{Issuer: "https://idp.example.com", ClientID: "app"}
	if err := provision(t, &h1); err != nil {
		t.Fatalf("Provision() error = %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("generated secret not kept: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode = %v, want 0600", st.Mode().Perm())
	}
	cookie, err := h1.sessions.codec.Encode(h1.sessions.cookieName, "value")
	if err != nil {
		t.Fatal(err)
	}
	// A second instance (or a restart) reads the same key: its cookies still decode.
	h2 := Handler{Issuer: "https://idp.example.com", ClientID: "app"}
	if err := provision(t, &h2); err != nil {
		t.Fatalf("Provision() error = %v", err)
	}
	var got string
	if err := h2.sessions.codec.Decode(h2.sessions.cookieName, cookie, &got); err != nil || got != "value" {
		t.Fatalf("Decode with the kept key = %q, %v; want value, nil", got, err)
	}
}

func TestProvisionSharesClientAndStore(t *testing.T) {
	a := Handler{Issuer: "https://idp.example.com", ClientID: "app", Secrets: []string{testSecret}}
	b := Handler{Issuer: "https://idp.example.com", ClientID: "app", Secrets: []string{testSecret}}
	c := Handler{Issuer: "https://idp.example.com", ClientID: "other", Secrets: []string{testSecret}}
	for _, h := range []*Handler{&a, &b, &c} {
		if err := provision(t, h); err != nil {
			t.Fatalf("Provision() error = %v", err)
		}
	}
	if a.client != b.client {
		t.Error("handlers with the same provider config got different clients; discovery would run twice")
	}
	if a.client == c.client {
		t.Error("handlers with different client_id share a client")
	}
	if unwrapStore(a.store) != unwrapStore(c.store) {
		t.Error("memory store is not shared")
	}
}

func TestCleanupAfterPartialProvision(t *testing.T) {
	h := Handler{ClientID: "c"}
	if err := provision(t, &h); err == nil {
		t.Fatal("Provision() without issuer succeeded")
	}
	if err := h.Cleanup(); err != nil {
		t.Fatalf("Cleanup() after failed Provision = %v", err)
	}
}

// TestValidateChecksValues: the parser takes a value as written and Validate judges it,
// once, so `caddy validate` and a JSON configuration see the same error.
func TestValidateChecksValues(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"userinfo put", `unknown userinfo method "put" (want get, post or off)`},
		{"token_auth_method client_secret_jwt", `unknown token auth method "client_secret_jwt"`},
		{"standard_headers some", "standard_headers"},
		{"error_pages html", "error_pages must be gateway"},
	} {
		var h Handler
		in := "trustgate https://idp.example.com {\n client_id c\n client_secret s\n " + tc.line + "\n}"
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
			t.Errorf("%s: parse error %v, want the value taken as written", tc.line, err)
			continue
		}
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want %q", tc.line, err, tc.want)
		}
	}
}
